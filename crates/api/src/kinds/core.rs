//! Core (`v1`) kinds: Namespace, ConfigMap, Secret, Service, Pod, Node, Event,
//! ServiceAccount, ReplicationController and PodTemplate.
//!
//! Rules follow upstream's `SetDefaults_*` in `core/v1` and `Validate*` / `Validate*Update` in
//! core validation, minus the generic metadata checks done elsewhere. Where upstream relies on
//! the REST layer (allocating cluster IPs and node ports, keeping a namespace's finalizers on
//! update) the server does that part; see the notes on each impl.

use super::pod::{
    SpecOf, config_map_key, default_pod, default_pod_status, default_pod_template, immutable, invalid_each,
    label_value, nonnegative, parse_cidr, parse_ip, port_num, qualified_name, selector_matches_map, set_if_empty, st,
    template_labels, to_value, validate_cidr, validate_dns_label, validate_dns_subdomain, validate_ip, validate_labels,
    validate_node_taint_effect, validate_pod_spec, validate_pod_spec_update, validate_pod_template_spec,
    validate_port_num_or_name, validate_qualified_name, validate_quantity_value, validate_template_for_controller,
};
use super::{ApiKind, PrepareStatus};
use crate::validation::{FieldError, FieldErrors, FieldPath};
use k8s_openapi::api::core::v1::{
    ClientIPConfig, ConfigMap, Event, Namespace, Node, Pod, PodSpec, PodStatus, PodTemplate, ReplicationController,
    Secret, Service, ServiceAccount, ServiceSpec, SessionAffinityConfig,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::Value;
use std::collections::BTreeSet;

/// Upstream's `MaxSecretSize`, also the limit for config maps.
const MAX_SECRET_SIZE: usize = 1024 * 1024;

// ---------------------------------------------------------------------------------------------
// Namespace
// ---------------------------------------------------------------------------------------------

/// Finalizer names without a `/` that upstream accepts.
const STANDARD_FINALIZERS: &[&str] = &["kubernetes", "orphan", "foregroundDeletion"];

/// Namespace.
///
/// Defaults: the `kubernetes.io/metadata.name` label (`SetDefaults_Namespace`), `status.phase:
/// Active`, and `spec.finalizers: [kubernetes]`. Upstream sets the finalizer in the create
/// strategy and keeps the old finalizers on update; here it is set only when `spec.finalizers`
/// is absent and the object has no `status.phase` yet, i.e. on a fresh object, so an update
/// that keeps its status keeps its finalizers as they are.
impl ApiKind for Namespace {
    fn set_defaults(&mut self) {
        if let Some(name) = self.metadata.name.clone().filter(|n| !n.is_empty()) {
            self.metadata
                .labels
                .get_or_insert_with(Default::default)
                .insert("kubernetes.io/metadata.name".to_string(), name);
        }
        let fresh = self.status.as_ref().is_none_or(|s| st(&s.phase).is_empty());
        let spec = self.spec.get_or_insert_with(Default::default);
        if fresh && spec.finalizers.is_none() {
            spec.finalizers = Some(vec!["kubernetes".to_string()]);
        }
        set_if_empty(&mut self.status.get_or_insert_with(Default::default).phase, "Active");
    }

    fn validate(&self) -> FieldErrors {
        let path = FieldPath::root("spec").child("finalizers");
        let mut errs = Vec::new();
        for f in self.spec.as_ref().and_then(|s| s.finalizers.as_ref()).into_iter().flatten() {
            errs.extend(validate_qualified_name(f, &path));
            if !f.contains('/') && !STANDARD_FINALIZERS.contains(&f.as_str()) {
                errs.push(FieldError::invalid(
                    &path,
                    f.as_str(),
                    "name is neither a standard finalizer name nor is it fully qualified",
                ));
            }
        }
        errs
    }
}

// ---------------------------------------------------------------------------------------------
// ConfigMap and Secret
// ---------------------------------------------------------------------------------------------

/// ConfigMap: keys are config keys, a key may not be in both `data` and `binaryData`, the
/// total is at most 1 MiB, and `immutable: true` freezes the contents.
impl ApiKind for ConfigMap {
    fn validate(&self) -> FieldErrors {
        let mut errs = Vec::new();
        let mut total = 0usize;
        let dp = FieldPath::root("data");
        for (k, v) in self.data.iter().flatten() {
            errs.extend(invalid_each(&dp.key(k), k.as_str(), config_map_key(k)));
            if self.binary_data.as_ref().is_some_and(|b| b.contains_key(k)) {
                errs.push(FieldError::invalid(&dp.key(k), k.as_str(), "duplicate of key present in binaryData"));
            }
            total += v.len();
        }
        let bp = FieldPath::root("binaryData");
        for (k, v) in self.binary_data.iter().flatten() {
            errs.extend(invalid_each(&bp.key(k), k.as_str(), config_map_key(k)));
            total += v.0.len();
        }
        if total > MAX_SECRET_SIZE {
            errs.push(FieldError::too_long(&FieldPath::root(""), MAX_SECRET_SIZE));
        }
        errs
    }

    fn validate_update(&self, old: &Self) -> FieldErrors {
        let mut errs = Vec::new();
        if old.immutable == Some(true) {
            if self.immutable != Some(true) {
                errs.push(FieldError::forbidden(&FieldPath::root("immutable"), IMMUTABLE_SET_MSG));
            }
            if self.data != old.data {
                errs.push(FieldError::forbidden(&FieldPath::root("data"), IMMUTABLE_SET_MSG));
            }
            if self.binary_data != old.binary_data {
                errs.push(FieldError::forbidden(&FieldPath::root("binaryData"), IMMUTABLE_SET_MSG));
            }
        }
        errs
    }
}

const IMMUTABLE_SET_MSG: &str = "field is immutable when `immutable` is set";

/// Secret. Defaults: `stringData` is merged into `data` (overriding it) and dropped, as
/// upstream's conversion does; `type` defaults to `Opaque`. Validation checks keys, the 1 MiB
/// limit and the keys each well-known type requires; `type` and, once `immutable` is set, the
/// data may not change.
impl ApiKind for Secret {
    fn set_defaults(&mut self) {
        if let Some(sd) = self.string_data.take() {
            let data = self.data.get_or_insert_with(Default::default);
            for (k, v) in sd {
                data.insert(k, k8s_openapi::ByteString(v.into_bytes()));
            }
        }
        set_if_empty(&mut self.type_, "Opaque");
    }

    fn validate(&self) -> FieldErrors {
        let mut errs = Vec::new();
        let dp = FieldPath::root("data");
        let empty = Default::default();
        let data = self.data.as_ref().unwrap_or(&empty);
        let mut total = 0usize;
        for (k, v) in data {
            errs.extend(invalid_each(&dp.key(k), k.as_str(), config_map_key(k)));
            total += v.0.len();
        }
        if total > MAX_SECRET_SIZE {
            errs.push(FieldError::too_long(&dp, MAX_SECRET_SIZE));
        }
        let json_key = |key: &str, errs: &mut FieldErrors| match data.get(key) {
            None => errs.push(FieldError::required(&dp.key(key), "")),
            Some(bytes) => {
                if let Err(e) = serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(&bytes.0) {
                    errs.push(FieldError::invalid(&dp.key(key), "<secret contents redacted>", &e.to_string()));
                }
            }
        };
        match st(&self.type_) {
            "kubernetes.io/service-account-token" => {
                let name = self.metadata.annotations.as_ref().and_then(|a| a.get("kubernetes.io/service-account.name"));
                if name.is_none_or(|n| n.is_empty()) {
                    errs.push(FieldError::required(
                        &FieldPath::root("metadata").child("annotations").key("kubernetes.io/service-account.name"),
                        "",
                    ));
                }
            }
            "kubernetes.io/dockercfg" => json_key(".dockercfg", &mut errs),
            "kubernetes.io/dockerconfigjson" => json_key(".dockerconfigjson", &mut errs),
            "kubernetes.io/basic-auth" if !data.contains_key("username") && !data.contains_key("password") => {
                errs.push(FieldError::required(&dp.key("username"), ""));
                errs.push(FieldError::required(&dp.key("password"), ""));
            }
            "kubernetes.io/ssh-auth" if data.get("ssh-privatekey").is_none_or(|v| v.0.is_empty()) => {
                errs.push(FieldError::required(&dp.key("ssh-privatekey"), ""));
            }
            "kubernetes.io/tls" => {
                for key in ["tls.crt", "tls.key"] {
                    if !data.contains_key(key) {
                        errs.push(FieldError::required(&dp.key(key), ""));
                    }
                }
            }
            _ => {}
        }
        errs
    }

    fn validate_update(&self, old: &Self) -> FieldErrors {
        let mut errs = immutable(&self.type_, &old.type_, &FieldPath::root("type"));
        if old.immutable == Some(true) {
            if self.immutable != Some(true) {
                errs.push(FieldError::forbidden(&FieldPath::root("immutable"), IMMUTABLE_SET_MSG));
            }
            if self.data != old.data {
                errs.push(FieldError::forbidden(&FieldPath::root("data"), IMMUTABLE_SET_MSG));
            }
        }
        errs
    }
}

// ---------------------------------------------------------------------------------------------
// Service
// ---------------------------------------------------------------------------------------------

fn service_type(spec: &ServiceSpec) -> &str {
    st(&spec.type_)
}

fn externally_accessible(spec: &ServiceSpec) -> bool {
    let t = service_type(spec);
    t == "LoadBalancer"
        || t == "NodePort"
        || (t == "ClusterIP" && spec.external_ips.as_ref().is_some_and(|e| !e.is_empty()))
}

fn is_headless(spec: &ServiceSpec) -> bool {
    spec.cluster_ips.as_deref().is_some_and(|ips| ips.len() == 1 && ips[0] == "None")
}

/// `ValidateNonSpecialIP`.
fn validate_non_special_ip(v: &str, path: &FieldPath) -> FieldErrors {
    let Some(ip) = parse_ip(v) else {
        return vec![FieldError::invalid(path, v, "must be a valid IP address")];
    };
    let mut errs = Vec::new();
    let (unspecified, loopback, link_local, link_local_mc) = match ip {
        std::net::IpAddr::V4(a) => {
            let o = a.octets();
            (a.is_unspecified(), a.is_loopback(), a.is_link_local(), o[0] == 224 && o[1] == 0 && o[2] == 0)
        }
        std::net::IpAddr::V6(a) => {
            let s = a.segments();
            (a.is_unspecified(), a.is_loopback(), s[0] & 0xffc0 == 0xfe80, s[0] & 0xff0f == 0xff02)
        }
    };
    if unspecified {
        errs.push(FieldError::invalid(path, v, &format!("may not be unspecified ({v})")));
    }
    if loopback {
        errs.push(FieldError::invalid(path, v, "may not be in the loopback range (127.0.0.0/8, ::1/128)"));
    }
    if link_local {
        errs.push(FieldError::invalid(path, v, "may not be in the link-local range (169.254.0.0/16, fe80::/10)"));
    }
    if link_local_mc {
        errs.push(FieldError::invalid(
            path,
            v,
            "may not be in the link-local multicast range (224.0.0.0/24, ff02::/10)",
        ));
    }
    errs
}

/// Service.
///
/// Defaults follow `SetDefaults_Service`; in addition a `clusterIP` given without `clusterIPs`
/// is copied into `clusterIPs` (upstream's create-time normalization), so validation sees the
/// two in step. Allocation (cluster IPs, IP families, node ports, health check node port) is the
/// server's job and happens before validation upstream; `healthCheckNodePort` is therefore not
/// required here, only checked when set. On update the server must carry allocated values over
/// from the old object before calling this (upstream does so in the REST layer).
impl ApiKind for Service {
    fn set_defaults(&mut self) {
        let spec = self.spec.get_or_insert_with(Default::default);
        set_if_empty(&mut spec.session_affinity, "None");
        match st(&spec.session_affinity) {
            "None" => spec.session_affinity_config = None,
            "ClientIP" => {
                let has_timeout = spec
                    .session_affinity_config
                    .as_ref()
                    .and_then(|c| c.client_ip.as_ref())
                    .is_some_and(|c| c.timeout_seconds.is_some());
                if !has_timeout {
                    spec.session_affinity_config = Some(SessionAffinityConfig {
                        client_ip: Some(ClientIPConfig { timeout_seconds: Some(10800) }),
                    });
                }
            }
            _ => {}
        }
        set_if_empty(&mut spec.type_, "ClusterIP");
        for p in spec.ports.iter_mut().flatten() {
            set_if_empty(&mut p.protocol, "TCP");
            let unset = match &p.target_port {
                None => true,
                Some(IntOrString::Int(0)) => true,
                Some(IntOrString::String(s)) => s.is_empty(),
                Some(IntOrString::Int(_)) => false,
            };
            if unset {
                p.target_port = Some(IntOrString::Int(p.port));
            }
        }
        if externally_accessible(spec) {
            set_if_empty(&mut spec.external_traffic_policy, "Cluster");
        }
        let t = service_type(spec).to_string();
        if spec.internal_traffic_policy.is_none() && matches!(t.as_str(), "NodePort" | "LoadBalancer" | "ClusterIP") {
            spec.internal_traffic_policy = Some("Cluster".to_string());
        }
        if t == "LoadBalancer" {
            spec.allocate_load_balancer_node_ports.get_or_insert(true);
            let ingress =
                self.status.as_mut().and_then(|s| s.load_balancer.as_mut()).and_then(|lb| lb.ingress.as_mut());
            for ing in ingress.into_iter().flatten() {
                if !st(&ing.ip).is_empty() && ing.ip_mode.is_none() {
                    ing.ip_mode = Some("VIP".to_string());
                }
            }
        }
        if !st(&spec.cluster_ip).is_empty() && spec.cluster_ips.as_ref().is_none_or(|v| v.is_empty()) {
            spec.cluster_ips = Some(vec![st(&spec.cluster_ip).to_string()]);
        }
    }

    fn validate(&self) -> FieldErrors {
        let empty = ServiceSpec::default();
        let spec = self.spec.as_ref().unwrap_or(&empty);
        let sp = FieldPath::root("spec");
        let mut errs = Vec::new();
        let annotations = self.metadata.annotations.as_ref();
        let ann = |k: &str| annotations.and_then(|a| a.get(k));
        if let (Some(mode), Some(hints)) =
            (ann("service.kubernetes.io/topology-mode"), ann("service.kubernetes.io/topology-aware-hints"))
            && mode != hints
        {
            errs.push(FieldError::invalid(
                &FieldPath::root("metadata").child("annotations").key("service.kubernetes.io/topology-mode"),
                mode.as_str(),
                "must match annotations[service.kubernetes.io/topology-aware-hints] when both are specified",
            ));
        }
        let ty = service_type(spec);
        let headless = is_headless(spec);
        let ports = spec.ports.as_deref().unwrap_or_default();
        if ports.is_empty() && !headless && ty != "ExternalName" {
            errs.push(FieldError::required(&sp.child("ports"), ""));
        }
        let cluster_ips = spec.cluster_ips.as_deref().unwrap_or_default();
        match ty {
            "LoadBalancer" | "NodePort" if headless => errs.push(FieldError::invalid(
                &sp.child("clusterIPs").index(0),
                cluster_ips[0].as_str(),
                &format!("may not be set to 'None' for {ty} services"),
            )),
            "ExternalName" => {
                if !cluster_ips.is_empty() {
                    errs.push(FieldError::forbidden(
                        &sp.child("clusterIPs"),
                        "may not be set for ExternalName services",
                    ));
                }
                if spec.ip_families.as_ref().is_some_and(|f| !f.is_empty()) {
                    errs.push(FieldError::forbidden(
                        &sp.child("ipFamilies"),
                        "may not be set for ExternalName services",
                    ));
                }
                if spec.ip_family_policy.is_some() {
                    errs.push(FieldError::forbidden(
                        &sp.child("ipFamilyPolicy"),
                        "may not be set for ExternalName services",
                    ));
                }
                let name = st(&spec.external_name);
                let cname = name.strip_suffix('.').unwrap_or(name);
                if cname.is_empty() {
                    errs.push(FieldError::required(&sp.child("externalName"), ""));
                } else {
                    errs.extend(validate_dns_subdomain(cname, &sp.child("externalName")));
                }
            }
            _ => {}
        }
        let pp = sp.child("ports");
        let mut names = BTreeSet::new();
        for (i, p) in ports.iter().enumerate() {
            let ip = pp.index(i);
            let name = st(&p.name);
            if ports.len() > 1 && name.is_empty() {
                errs.push(FieldError::required(&ip.child("name"), ""));
            } else if !name.is_empty() {
                errs.extend(validate_dns_label(name, &ip.child("name")));
                if !names.insert(name) {
                    errs.push(FieldError::duplicate(&ip.child("name"), name));
                }
            }
            errs.extend(invalid_each(&ip.child("port"), p.port, port_num(i64::from(p.port))));
            match st(&p.protocol) {
                "" => errs.push(FieldError::required(&ip.child("protocol"), "")),
                "TCP" | "UDP" | "SCTP" => {}
                other => errs.push(FieldError::not_supported(&ip.child("protocol"), other, &["SCTP", "TCP", "UDP"])),
            }
            let target = p.target_port.clone().unwrap_or(IntOrString::Int(0));
            errs.extend(validate_port_num_or_name(&target, &ip.child("targetPort")));
            if let Some(ap) = &p.app_protocol {
                errs.extend(validate_qualified_name(ap, &ip.child("appProtocol")));
            }
        }
        errs.extend(validate_labels(spec.selector.as_ref(), &sp.child("selector")));
        match st(&spec.session_affinity) {
            "" => errs.push(FieldError::required(&sp.child("sessionAffinity"), "")),
            "ClientIP" => {
                let cp = sp.child("sessionAffinityConfig");
                match spec.session_affinity_config.as_ref() {
                    None => errs.push(FieldError::required(&cp, "when session affinity type is ClientIP")),
                    Some(c) => match c.client_ip.as_ref() {
                        None => errs.push(FieldError::required(
                            &cp.child("clientIP"),
                            "when session affinity type is ClientIP",
                        )),
                        Some(ip) => match ip.timeout_seconds {
                            None => errs.push(FieldError::required(
                                &cp.child("clientIP").child("timeoutSeconds"),
                                "when session affinity type is ClientIP",
                            )),
                            Some(t) if t <= 0 || t > 86400 => errs.push(FieldError::invalid(
                                &cp.child("clientIP").child("timeoutSeconds"),
                                t,
                                "must be greater than 0 and less than 86400",
                            )),
                            Some(_) => {}
                        },
                    },
                }
            }
            "None" => {
                if spec.session_affinity_config.is_some() {
                    errs.push(FieldError::forbidden(
                        &sp.child("sessionAffinityConfig"),
                        "must not be set when session affinity is None",
                    ));
                }
            }
            other => errs.push(FieldError::not_supported(&sp.child("sessionAffinity"), other, &["ClientIP", "None"])),
        }
        errs.extend(validate_cluster_ips(spec));
        for (i, ip) in spec.external_ips.iter().flatten().enumerate() {
            let p = sp.child("externalIPs").index(i);
            let e = validate_ip(ip, &p);
            if e.is_empty() {
                errs.extend(validate_non_special_ip(ip, &p));
            } else {
                errs.extend(e);
            }
        }
        const TYPES: &[&str] = &["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"];
        if ty.is_empty() {
            errs.push(FieldError::required(&sp.child("type"), ""));
        } else if !TYPES.contains(&ty) {
            errs.push(FieldError::not_supported(&sp.child("type"), ty, TYPES));
        }
        if ty == "ClusterIP" {
            for (i, p) in ports.iter().enumerate() {
                if p.node_port.unwrap_or(0) != 0 {
                    errs.push(FieldError::forbidden(
                        &pp.index(i).child("nodePort"),
                        "may not be used when `type` is 'ClusterIP'",
                    ));
                }
            }
        }
        let mut node_ports = BTreeSet::new();
        for (i, p) in ports.iter().enumerate() {
            let np = p.node_port.unwrap_or(0);
            if np != 0 && !node_ports.insert((st(&p.protocol), np)) {
                errs.push(FieldError::duplicate(&pp.index(i).child("nodePort"), np));
            }
        }
        let mut seen = BTreeSet::new();
        for (i, p) in ports.iter().enumerate() {
            if !seen.insert((st(&p.protocol), p.port)) {
                errs.push(FieldError::duplicate(
                    &pp.index(i),
                    serde_json::json!({"port": p.port, "protocol": st(&p.protocol)}),
                ));
            }
        }
        let ranges = spec.load_balancer_source_ranges.as_deref().unwrap_or_default();
        const LB_ONLY: &str = "may only be used when `type` is 'LoadBalancer'";
        if !ranges.is_empty() {
            let rp = sp.child("LoadBalancerSourceRanges");
            if ty != "LoadBalancer" {
                errs.push(FieldError::forbidden(&rp, LB_ONLY));
            }
            for (i, r) in ranges.iter().enumerate() {
                errs.extend(validate_cidr(r.trim(), &rp.index(i)));
            }
        } else if let Some(val) = ann("service.beta.kubernetes.io/load-balancer-source-ranges") {
            let ap = FieldPath::root("metadata")
                .child("annotations")
                .key("service.beta.kubernetes.io/load-balancer-source-ranges");
            if ty != "LoadBalancer" {
                errs.push(FieldError::forbidden(&ap, LB_ONLY));
            }
            let val = val.trim();
            if !val.is_empty() {
                for r in val.split(',') {
                    errs.extend(validate_cidr(r.trim(), &ap));
                }
            }
        }
        if spec.allocate_load_balancer_node_ports.is_some() && ty != "LoadBalancer" {
            errs.push(FieldError::forbidden(&sp.child("allocateLoadBalancerNodePorts"), LB_ONLY));
        }
        if ty == "LoadBalancer" && spec.allocate_load_balancer_node_ports.is_none() {
            // Upstream reports this one without the `spec.` prefix.
            errs.push(FieldError::required(&FieldPath::root("allocateLoadBalancerNodePorts"), ""));
        }
        if let Some(class) = &spec.load_balancer_class {
            if ty == "LoadBalancer" {
                errs.extend(validate_qualified_name(class, &sp.child("loadBalancerClass")));
            } else {
                errs.push(FieldError::forbidden(&sp.child("loadBalancerClass"), LB_ONLY));
            }
        }
        let etp = st(&spec.external_traffic_policy);
        if !externally_accessible(spec) {
            if !etp.is_empty() {
                errs.push(FieldError::invalid(
                    &sp.child("externalTrafficPolicy"),
                    etp,
                    "may only be set for externally-accessible services",
                ));
            }
        } else if etp.is_empty() {
            errs.push(FieldError::required(&sp.child("externalTrafficPolicy"), ""));
        } else if etp != "Cluster" && etp != "Local" {
            errs.push(FieldError::not_supported(&sp.child("externalTrafficPolicy"), etp, &["Cluster", "Local"]));
        }
        let needs_health_check = ty == "LoadBalancer" && etp == "Local";
        let hc = spec.health_check_node_port.unwrap_or(0);
        if !needs_health_check && hc != 0 {
            errs.push(FieldError::invalid(
                &sp.child("healthCheckNodePort"),
                hc,
                "may only be set when `type` is 'LoadBalancer' and `externalTrafficPolicy` is 'Local'",
            ));
        } else if needs_health_check && hc != 0 {
            errs.extend(invalid_each(&sp.child("healthCheckNodePort"), hc, port_num(i64::from(hc))));
        }
        match spec.internal_traffic_policy.as_deref() {
            None if matches!(ty, "NodePort" | "LoadBalancer" | "ClusterIP") => {
                errs.push(FieldError::required(&sp.child("internalTrafficPolicy"), ""))
            }
            Some(p) if p != "Cluster" && p != "Local" => {
                errs.push(FieldError::not_supported(&sp.child("internalTrafficPolicy"), p, &["Cluster", "Local"]))
            }
            _ => {}
        }
        if let Some(td) = spec.traffic_distribution.as_deref()
            && td != "PreferClose"
        {
            errs.push(FieldError::not_supported(&sp.child("trafficDistribution"), td, &["PreferClose"]));
        }
        errs
    }

    fn validate_update(&self, old: &Self) -> FieldErrors {
        let empty = ServiceSpec::default();
        let new = self.spec.as_ref().unwrap_or(&empty);
        let old = old.spec.as_ref().unwrap_or(&empty);
        let mut errs = Vec::new();
        let sp = FieldPath::root("spec");
        let external_name = service_type(new) == "ExternalName" || service_type(old) == "ExternalName";
        if !external_name && (!is_headless(new) || !is_headless(old)) {
            errs.extend(cluster_ip_changes(new, old));
        }
        if !external_name && is_headless(new) == is_headless(old) && !is_headless(new) {
            errs.extend(ip_family_changes(new, old));
        }
        if service_type(new) == "LoadBalancer"
            && service_type(old) == "LoadBalancer"
            && new.load_balancer_class != old.load_balancer_class
        {
            errs.push(FieldError::invalid(
                &sp.child("loadBalancerClass"),
                to_value(&new.load_balancer_class),
                "may not change once set",
            ));
        }
        let needs = |s: &ServiceSpec| service_type(s) == "LoadBalancer" && st(&s.external_traffic_policy) == "Local";
        if needs(old) && needs(new) && new.health_check_node_port != old.health_check_node_port {
            errs.push(FieldError::forbidden(&sp.child("healthCheckNodePort"), "field is immutable"));
        }
        errs
    }
}

/// `ValidateServiceClusterIPsRelatedFields`.
fn validate_cluster_ips(spec: &ServiceSpec) -> FieldErrors {
    let mut errs = Vec::new();
    if service_type(spec) == "ExternalName" {
        return errs;
    }
    let sp = FieldPath::root("spec");
    let cp = sp.child("clusterIPs");
    let ips = spec.cluster_ips.as_deref().unwrap_or_default();
    let cluster_ip = st(&spec.cluster_ip);
    if !cluster_ip.is_empty() {
        if ips.is_empty() {
            errs.push(FieldError::required(&cp, ""));
        } else if ips[0] != cluster_ip {
            errs.push(FieldError::invalid(&cp, to_value(&ips), "first value must match `clusterIP`"));
        }
    } else if !ips.is_empty() {
        errs.push(FieldError::invalid(&cp, to_value(&ips), "must be empty when `clusterIP` is not specified"));
    }
    let mut seen = BTreeSet::new();
    for (i, f) in spec.ip_families.iter().flatten().enumerate() {
        if f != "IPv4" && f != "IPv6" {
            errs.push(FieldError::not_supported(&sp.child("ipFamilies").index(i), f.as_str(), &["IPv4", "IPv6"]));
        }
        if !seen.insert(f.as_str()) {
            errs.push(FieldError::duplicate(&sp.child("ipFamilies").index(i), f.as_str()));
        }
    }
    if let Some(p) = spec.ip_family_policy.as_deref() {
        const POLICIES: &[&str] = &["PreferDualStack", "RequireDualStack", "SingleStack"];
        if !POLICIES.contains(&p) {
            errs.push(FieldError::not_supported(&sp.child("ipFamilyPolicy"), p, POLICIES));
        }
    }
    let mut bad = false;
    for (i, ip) in ips.iter().enumerate() {
        if i == 0 && ip == "None" {
            if ips.len() > 1 {
                bad = true;
                errs.push(FieldError::invalid(&cp, to_value(&ips), "'None' must be the first and only value"));
            }
            continue;
        }
        let e = validate_ip(ip, &cp.index(i));
        bad |= !e.is_empty();
        errs.extend(e);
    }
    if ips.len() > 2 {
        errs.push(FieldError::invalid(&cp, to_value(&ips), "may only hold up to 2 values"));
    }
    if bad {
        return errs;
    }
    if ips.len() > 1 {
        let v6: Vec<bool> = ips.iter().filter_map(|ip| parse_ip(ip)).map(|ip| ip.is_ipv6()).collect();
        let dual = v6.len() == 2 && v6[0] != v6[1];
        if !dual {
            errs.push(FieldError::invalid(&cp, to_value(&ips), "may specify no more than one IP for each IP family"));
        }
    }
    if !is_headless(spec) {
        let families = spec.ip_families.as_deref().unwrap_or_default();
        for (i, (ip, fam)) in ips.iter().zip(families).enumerate() {
            let is_v6 = parse_ip(ip).is_some_and(|x| x.is_ipv6());
            if fam == "IPv4" && is_v6 {
                errs.push(FieldError::invalid(
                    &cp.index(i),
                    ip.as_str(),
                    &format!("expected an IPv4 value as indicated by `ipFamilies[{i}]`"),
                ));
            }
            if fam == "IPv6" && !is_v6 {
                errs.push(FieldError::invalid(
                    &cp.index(i),
                    ip.as_str(),
                    &format!("expected an IPv6 value as indicated by `ipFamilies[{i}]`"),
                ));
            }
        }
    }
    errs
}

/// `validateUpgradeDowngradeClusterIPs`: the primary cluster IP may not change once set.
fn cluster_ip_changes(new: &ServiceSpec, old: &ServiceSpec) -> FieldErrors {
    let mut errs = Vec::new();
    let cp = FieldPath::root("spec").child("clusterIPs");
    let n = new.cluster_ips.as_deref().unwrap_or_default();
    let o = old.cluster_ips.as_deref().unwrap_or_default();
    if n.len() == o.len() {
        for (i, ip) in o.iter().enumerate() {
            if *ip != n[i] {
                errs.push(FieldError::invalid(&cp.index(i), to_value(&n), "may not change once set"));
            }
        }
    } else if o.len() > n.len() {
        if n.is_empty() {
            errs.push(FieldError::invalid(&cp.index(0), to_value(&n), "primary clusterIP can not be unset"));
        }
        if !o.is_empty() && !n.is_empty() && n[0] != o[0] {
            errs.push(FieldError::invalid(&cp.index(0), to_value(&n), "may not change once set"));
        }
        if n.len() == 1 && st(&new.ip_family_policy) != "SingleStack" {
            errs.push(FieldError::invalid(
                &FieldPath::root("spec").child("ipFamilyPolicy"),
                to_value(&new.ip_family_policy),
                "must be set to 'SingleStack' when releasing the secondary clusterIP",
            ));
        }
    } else if !o.is_empty() && n[0] != o[0] {
        errs.push(FieldError::invalid(&cp.index(0), to_value(&n), "may not change once set"));
    }
    errs
}

/// `validateUpgradeDowngradeIPFamilies`.
fn ip_family_changes(new: &ServiceSpec, old: &ServiceSpec) -> FieldErrors {
    let mut errs = Vec::new();
    let fp = FieldPath::root("spec").child("ipFamilies");
    let n = new.ip_families.as_deref().unwrap_or_default();
    let o = old.ip_families.as_deref().unwrap_or_default();
    let ips = new.cluster_ips.as_deref().unwrap_or_default();
    if n.len() == o.len() {
        for (i, f) in o.iter().enumerate() {
            if *f != n[i] {
                errs.push(FieldError::invalid(&fp.index(0), to_value(&n), "may not change once set"));
            }
        }
    } else if o.len() > n.len() {
        if ips.is_empty() {
            errs.push(FieldError::invalid(&fp.index(0), to_value(&n), "primary ipFamily can not be unset"));
        }
        if !n.is_empty() && n[0] != o[0] {
            errs.push(FieldError::invalid(&fp.index(0), to_value(&ips), "may not change once set"));
        }
        if n.len() == 1 && st(&new.ip_family_policy) != "SingleStack" {
            errs.push(FieldError::invalid(
                &FieldPath::root("spec").child("ipFamilyPolicy"),
                to_value(&new.ip_family_policy),
                "must be set to 'SingleStack' when releasing the secondary ipFamily",
            ));
        }
    } else if !o.is_empty() && !n.is_empty() && n[0] != o[0] {
        errs.push(FieldError::invalid(&fp.index(0), to_value(&ips), "may not change once set"));
    }
    errs
}

// ---------------------------------------------------------------------------------------------
// Pod, PodTemplate, ReplicationController
// ---------------------------------------------------------------------------------------------

const MIRROR_POD_ANNOTATION: &str = "kubernetes.io/config.mirror";
const DELETION_COST_ANNOTATION: &str = "controller.kubernetes.io/pod-deletion-cost";

/// Pod: the pod defaults and `ValidatePodSpec` with the Pod-only rules, the pod-specific
/// annotations (mirror pods need a node, deletion cost is an int32), and on update the rules of
/// `ValidatePodUpdate`.
///
/// A `status` write keeps the stored metadata and spec as they are (upstream's
/// `podStatusStrategy`): only the new status is decoded and defaulted.
///
/// Not done here: rejecting ephemeral containers on create (indistinguishable from an update
/// here; the update rules already forbid changing them) and requiring `serviceAccountName` for
/// projected service account tokens (upstream's admission sets that name first).
impl ApiKind for Pod {
    const PREPARE_STATUS: Option<PrepareStatus> = Some(prepare_pod_status);

    fn set_defaults(&mut self) {
        default_pod(self);
    }

    fn validate(&self) -> FieldErrors {
        let empty = PodSpec::default();
        let spec = self.spec.as_ref().unwrap_or(&empty);
        let mut errs = Vec::new();
        let ap = FieldPath::root("metadata").child("annotations");
        let annotations = self.metadata.annotations.as_ref();
        if let Some(v) = annotations.and_then(|a| a.get(MIRROR_POD_ANNOTATION))
            && st(&spec.node_name).is_empty()
        {
            errs.push(FieldError::invalid(
                &ap.key(MIRROR_POD_ANNOTATION),
                v.as_str(),
                "must set spec.nodeName if mirror pod annotation is set",
            ));
        }
        if let Some(v) = annotations.and_then(|a| a.get(DELETION_COST_ANNOTATION))
            && v.parse::<i32>().is_err()
        {
            errs.push(FieldError::invalid(&ap.key(DELETION_COST_ANNOTATION), v.as_str(), "must be a 32bit integer"));
        }
        errs.extend(validate_pod_spec(spec, &FieldPath::root("spec"), SpecOf::Pod));
        errs
    }

    fn validate_update(&self, old: &Self) -> FieldErrors {
        let mut errs = Vec::new();
        let ap = FieldPath::root("metadata").child("annotations");
        let new_m = self.metadata.annotations.as_ref().and_then(|a| a.get(MIRROR_POD_ANNOTATION));
        let old_m = old.metadata.annotations.as_ref().and_then(|a| a.get(MIRROR_POD_ANNOTATION));
        match (old_m, new_m) {
            (Some(o), n) if n != Some(o) => errs.push(FieldError::forbidden(
                &ap.key(MIRROR_POD_ANNOTATION),
                "may not remove or update mirror pod annotation",
            )),
            (None, Some(_)) => {
                errs.push(FieldError::forbidden(&ap.key(MIRROR_POD_ANNOTATION), "may not add mirror pod annotation"))
            }
            _ => {}
        }
        let empty = PodSpec::default();
        errs.extend(validate_pod_spec_update(
            self.spec.as_ref().unwrap_or(&empty),
            old.spec.as_ref().unwrap_or(&empty),
        ));
        errs
    }
}

/// [`ApiKind::PREPARE_STATUS`] of Pod: the status as [`super::prepare`] would leave it.
fn prepare_pod_status(status: Value) -> Result<Option<Value>, String> {
    let Some(mut status) = serde_json::from_value::<Option<PodStatus>>(status).map_err(|e| e.to_string())? else {
        return Ok(None);
    };
    default_pod_status(&mut status);
    serde_json::to_value(&status).map(Some).map_err(|e| e.to_string())
}

/// PodTemplate: template defaults and `ValidatePodTemplateSpec` at `template`.
impl ApiKind for PodTemplate {
    fn set_defaults(&mut self) {
        default_pod_template(self.template.get_or_insert_with(Default::default));
    }

    fn validate(&self) -> FieldErrors {
        let empty = Default::default();
        validate_pod_template_spec(self.template.as_ref().unwrap_or(&empty), &FieldPath::root("template"))
    }
}

/// ReplicationController. Defaults: `replicas: 1`; an empty selector and empty object labels
/// are taken from the template labels (`SetDefaults_ReplicationController`). Validation:
/// non-negative replicas and minReadySeconds, a non-empty selector that matches the template,
/// a valid template with `restartPolicy: Always` and no active deadline.
impl ApiKind for ReplicationController {
    fn set_defaults(&mut self) {
        let spec = self.spec.get_or_insert_with(Default::default);
        if let Some(labels) = spec.template.as_ref().and_then(|t| t.metadata.as_ref()).and_then(|m| m.labels.clone()) {
            if spec.selector.as_ref().is_none_or(|s| s.is_empty()) {
                spec.selector = Some(labels.clone());
            }
            if self.metadata.labels.as_ref().is_none_or(|l| l.is_empty()) {
                self.metadata.labels = Some(labels);
            }
        }
        spec.replicas.get_or_insert(1);
        if let Some(t) = &mut spec.template {
            default_pod_template(t);
        }
    }

    fn validate(&self) -> FieldErrors {
        let empty = Default::default();
        let spec = self.spec.as_ref().unwrap_or(&empty);
        let sp = FieldPath::root("spec");
        let mut errs = nonnegative(i64::from(spec.min_ready_seconds.unwrap_or(0)), &sp.child("minReadySeconds"));
        let selector = spec.selector.as_ref().filter(|s| !s.is_empty());
        if selector.is_none() {
            errs.push(FieldError::required(&sp.child("selector"), ""));
        }
        errs.extend(nonnegative(i64::from(spec.replicas.unwrap_or(0)), &sp.child("replicas")));
        match &spec.template {
            None => errs.push(FieldError::required(&sp.child("template"), "")),
            Some(t) => {
                let matches = selector.map(|s| selector_matches_map(s, template_labels(t)));
                errs.extend(validate_template_for_controller(
                    t,
                    matches,
                    "ReplicationController",
                    &sp.child("template"),
                ));
            }
        }
        errs
    }
}

// ---------------------------------------------------------------------------------------------
// Node
// ---------------------------------------------------------------------------------------------

/// Node. Defaults: `status.allocatable` copies `status.capacity` when unset, and `podCIDR` /
/// `podCIDRs` are kept in step (upstream's conversion). Validation: taints (reported under
/// `metadata.taints`, as upstream does), pod CIDRs and resource quantities; on update the pod
/// CIDRs and provider ID may only go from empty to set, and addresses may not repeat.
impl ApiKind for Node {
    fn set_defaults(&mut self) {
        if let Some(spec) = &mut self.spec {
            if spec.pod_cidrs.as_ref().is_none_or(|v| v.is_empty()) && !st(&spec.pod_cidr).is_empty() {
                spec.pod_cidrs = Some(vec![st(&spec.pod_cidr).to_string()]);
            }
            if let Some(first) = spec.pod_cidrs.as_ref().and_then(|v| v.first()) {
                spec.pod_cidr = Some(first.clone());
            }
        }
        if let Some(status) = &mut self.status
            && status.allocatable.is_none()
            && status.capacity.is_some()
        {
            status.allocatable = status.capacity.clone();
        }
    }

    fn validate(&self) -> FieldErrors {
        let mut errs = Vec::new();
        let spec = self.spec.clone().unwrap_or_default();
        errs.extend(validate_taints(&spec, &FieldPath::root("metadata").child("taints")));
        errs.extend(validate_node_resources(self));
        let cidrs = spec.pod_cidrs.as_deref().unwrap_or_default();
        let cp = FieldPath::root("spec").child("podCIDRs");
        for (i, c) in cidrs.iter().enumerate() {
            errs.extend(validate_cidr(c, &cp.index(i)));
        }
        if cidrs.len() > 1 {
            let fams: Vec<Option<bool>> = cidrs.iter().map(|c| parse_cidr(c)).collect();
            let dual = fams.len() == 2 && fams.iter().all(Option::is_some) && fams[0] != fams[1];
            if !dual {
                errs.push(FieldError::invalid(
                    &cp,
                    to_value(&cidrs),
                    "may specify no more than one CIDR for each IP family",
                ));
            }
            let mut seen = BTreeSet::new();
            for (i, c) in cidrs.iter().enumerate() {
                if !seen.insert(c.as_str()) {
                    errs.push(FieldError::duplicate(&cp.index(i), c.as_str()));
                }
            }
        }
        errs
    }

    fn validate_update(&self, old: &Self) -> FieldErrors {
        let mut errs = Vec::new();
        let new_spec = self.spec.clone().unwrap_or_default();
        let old_spec = old.spec.clone().unwrap_or_default();
        let mut seen = BTreeSet::new();
        for (i, a) in self.status.as_ref().and_then(|s| s.addresses.as_ref()).into_iter().flatten().enumerate() {
            if !seen.insert((a.type_.clone(), a.address.clone())) {
                errs.push(FieldError::duplicate(&FieldPath::root("status").child("addresses").index(i), to_value(a)));
            }
        }
        let old_cidrs = old_spec.pod_cidrs.as_deref().unwrap_or_default();
        let new_cidrs = new_spec.pod_cidrs.as_deref().unwrap_or_default();
        const CIDR_MSG: &str = "node updates may not change podCIDR except from \"\" to valid";
        let cp = FieldPath::root("spec").child("podCIDRs");
        if !old_cidrs.is_empty() {
            if old_cidrs.len() != new_cidrs.len() {
                errs.push(FieldError::forbidden(&cp, CIDR_MSG));
            } else {
                for (o, n) in old_cidrs.iter().zip(new_cidrs) {
                    if o != n {
                        errs.push(FieldError::forbidden(&cp, CIDR_MSG));
                    }
                }
            }
        }
        if !st(&old_spec.provider_id).is_empty() && old_spec.provider_id != new_spec.provider_id {
            errs.push(FieldError::forbidden(
                &FieldPath::root("spec").child("providerID"),
                "node updates may not change providerID except from \"\" to valid",
            ));
        }
        if st(&new_spec.external_id) != st(&old_spec.external_id) {
            errs.push(FieldError::forbidden(&FieldPath::root("spec").child("externalID"), "may not be updated"));
        }
        errs
    }
}

fn validate_taints(spec: &k8s_openapi::api::core::v1::NodeSpec, path: &FieldPath) -> FieldErrors {
    let mut errs = Vec::new();
    let mut unique = BTreeSet::new();
    for (i, t) in spec.taints.iter().flatten().enumerate() {
        let p = path.index(i);
        errs.extend(validate_qualified_name(&t.key, &p.child("key")));
        let msgs = label_value(st(&t.value));
        if !msgs.is_empty() {
            errs.push(FieldError::invalid(&p.child("value"), st(&t.value), &msgs.join(";")));
        }
        errs.extend(validate_node_taint_effect(&t.effect, &p.child("effect")));
        if !unique.insert((t.effect.clone(), t.key.clone())) {
            let mut e = FieldError::duplicate(&p, to_value(t));
            e.detail = "taints must be unique by key and effect pair".to_string();
            errs.push(e);
        }
    }
    errs
}

fn validate_node_resources(node: &Node) -> FieldErrors {
    let mut errs = Vec::new();
    let Some(status) = &node.status else { return errs };
    for (field, list) in [("capacity", &status.capacity), ("allocatable", &status.allocatable)] {
        for (k, v) in list.iter().flatten() {
            errs.extend(validate_quantity_value(k, v, &FieldPath::root("status").child(field).child(k)));
        }
    }
    errs
}

// ---------------------------------------------------------------------------------------------
// Event, ServiceAccount
// ---------------------------------------------------------------------------------------------

/// Event (`v1`): upstream's legacy event validation, the only one applied to the core API
/// group. Events without `eventTime` need `involvedObject.namespace` to agree with the event's
/// namespace; events with it need the reporting fields, `action` and `reason`, with length
/// limits. `type` is not checked for `v1` events (upstream checks it only for
/// `events.k8s.io`). The namespace format is checked when the namespace is set.
impl ApiKind for Event {
    fn validate(&self) -> FieldErrors {
        let mut errs = Vec::new();
        let ns = st(&self.metadata.namespace);
        let involved_ns = st(&self.involved_object.namespace);
        let ip = FieldPath::root("involvedObject").child("namespace");
        const MISMATCH: &str = "does not match event.namespace";
        if self.event_time.is_none() {
            if involved_ns.is_empty() {
                if !ns.is_empty() && ns != "default" {
                    errs.push(FieldError::invalid(&ip, involved_ns, MISMATCH));
                }
            } else if ns != involved_ns {
                errs.push(FieldError::invalid(&ip, involved_ns, MISMATCH));
            }
        } else {
            if involved_ns.is_empty() && ns != "default" && ns != "kube-system" {
                errs.push(FieldError::invalid(&ip, involved_ns, MISMATCH));
            }
            let controller = st(&self.reporting_component);
            let rc = FieldPath::root("reportingController");
            if controller.is_empty() {
                errs.push(FieldError::required(&rc, ""));
            }
            errs.extend(invalid_each(&rc, controller, qualified_name(controller)));
            for (value, name, limit) in [
                (st(&self.reporting_instance), "reportingInstance", 128usize),
                (st(&self.action), "action", 128),
                (st(&self.reason), "reason", 128),
            ] {
                let p = FieldPath::root(name);
                if value.is_empty() {
                    errs.push(FieldError::required(&p, ""));
                }
                if value.len() > limit {
                    errs.push(FieldError::invalid(&p, "", &format!("can have at most {limit} characters")));
                }
            }
            if st(&self.message).len() > 1024 {
                errs.push(FieldError::invalid(&FieldPath::root("message"), "", "can have at most 1024 characters"));
            }
        }
        if !ns.is_empty() {
            errs.extend(validate_dns_subdomain(ns, &FieldPath::root("namespace")));
        }
        errs
    }
}

/// ServiceAccount: upstream checks nothing beyond the generic metadata.
impl ApiKind for ServiceAccount {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kinds::pod::has;
    use crate::validation::ErrorType;
    use serde_json::{Value, json};

    fn prep<T: ApiKind>(v: Value) -> T {
        let mut t: T = serde_json::from_value(v).unwrap();
        t.set_defaults();
        t
    }

    fn check<T: ApiKind>(cases: Vec<(&str, Value, ErrorType, &str)>) {
        for (name, v, ty, field) in cases {
            let t: T = prep(v);
            let errs = t.validate();
            assert!(has(&errs, ty, field), "{name}: wanted {ty:?} at {field:?}, got {errs:?}");
        }
    }

    fn strings(errs: &FieldErrors) -> Vec<String> {
        errs.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn pod_status_writes_normalize_the_status_as_a_whole_pod_write_does() {
        use crate::kinds::{Mode, prepare};
        let prepare_status = Pod::PREPARE_STATUS.expect("pods have a status strategy");
        let pod = |status: &Value| {
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
                "spec": {"containers": [{"name": "c", "image": "i"}]}, "status": status})
        };
        for status in [
            json!(null),
            json!({}),
            json!({"phase": "Running", "podIP": "10.0.0.1", "hostIP": "192.168.0.1", "bogus": 1,
                "conditions": [{"type": "Ready", "status": "True", "lastProbeTime": null,
                    "lastTransitionTime": "2024-01-01T00:00:00.5Z"}]}),
            json!({"podIP": "10.0.0.9", "podIPs": [{"ip": "10.0.0.2"}, {"ip": "fd00::2"}], "hostIPs": []}),
        ] {
            let whole = prepare::<Pod>(pod(&status), None, Mode::Full).unwrap();
            assert_eq!(prepare_status(status.clone()).unwrap().as_ref(), whole.object.get("status"), "{status}");
        }
        for status in [
            json!(5),
            json!({"phase": 5}),
            json!({"conditions": {"type": "Ready"}}),
            json!({"startTime": "yesterday"}),
            json!({"containerStatuses": [{"name": "c", "ready": "yes"}]}),
        ] {
            let whole = prepare::<Pod>(pod(&status), None, Mode::Full).unwrap_err();
            assert_eq!(prepare_status(status.clone()).unwrap_err(), whole, "{status}");
        }
    }

    #[test]
    fn namespace_defaults_and_finalizers() {
        let ns: Namespace = prep(json!({"metadata": {"name": "team"}}));
        let v = to_value(&ns);
        assert_eq!(v["spec"]["finalizers"], json!(["kubernetes"]));
        assert_eq!(v["status"]["phase"], "Active");
        assert_eq!(v["metadata"]["labels"]["kubernetes.io/metadata.name"], "team");
        assert!(ns.validate().is_empty());
        // An existing namespace (with a phase) keeps what it has.
        let ns: Namespace = prep(json!({"metadata": {"name": "team"}, "spec": {}, "status": {"phase": "Terminating"}}));
        assert!(to_value(&ns)["spec"].get("finalizers").is_none());
        check::<Namespace>(vec![
            ("non standard", json!({"spec": {"finalizers": ["custom"]}}), ErrorType::Invalid, "spec.finalizers"),
            ("bad qualified", json!({"spec": {"finalizers": ["a/b/c"]}}), ErrorType::Invalid, "spec.finalizers"),
        ]);
        let ok: Namespace = prep(json!({"spec": {"finalizers": ["example.com/x", "kubernetes"]}}));
        assert!(ok.validate().is_empty());
    }

    #[test]
    fn config_maps() {
        check::<ConfigMap>(vec![
            ("bad key", json!({"data": {"a b": "x"}}), ErrorType::Invalid, "data[a b]"),
            ("bad binary key", json!({"binaryData": {"..": ""}}), ErrorType::Invalid, "binaryData[..]"),
            ("both bags", json!({"data": {"k": "x"}, "binaryData": {"k": ""}}), ErrorType::Invalid, "data[k]"),
            ("too big", json!({"data": {"k": "x".repeat(MAX_SECRET_SIZE + 1)}}), ErrorType::TooLong, ""),
        ]);
        let cm: ConfigMap = prep(json!({"data": {"a b": "x"}}));
        assert!(strings(&cm.validate())[0].starts_with("data[a b]: Invalid value: \"a b\": a valid config key must consist of alphanumeric characters, '-', '_' or '.'"));
        let old: ConfigMap = prep(json!({"data": {"k": "x"}, "immutable": true}));
        let new: ConfigMap = prep(json!({"data": {"k": "y"}, "immutable": true}));
        assert_eq!(
            strings(&new.validate_update(&old)),
            vec!["data: Forbidden: field is immutable when `immutable` is set"]
        );
        let new: ConfigMap = prep(json!({"data": {"k": "x"}}));
        assert!(has(&new.validate_update(&old), ErrorType::Forbidden, "immutable"));
        let mutable: ConfigMap = prep(json!({"data": {"k": "x"}}));
        assert!(prep::<ConfigMap>(json!({"data": {"k": "z"}})).validate_update(&mutable).is_empty());
    }

    #[test]
    fn secrets() {
        let s: Secret = prep(json!({"stringData": {"a": "hello"}, "data": {"a": "eA==", "b": "eQ=="}}));
        let v = to_value(&s);
        assert_eq!(v["type"], "Opaque");
        assert_eq!(v["data"], json!({"a": "aGVsbG8=", "b": "eQ=="}));
        assert!(v.get("stringData").is_none());
        check::<Secret>(vec![
            ("bad key", json!({"data": {"a/b": ""}}), ErrorType::Invalid, "data[a/b]"),
            (
                "tls cert",
                json!({"type": "kubernetes.io/tls", "data": {"tls.key": ""}}),
                ErrorType::Required,
                "data[tls.crt]",
            ),
            (
                "tls key",
                json!({"type": "kubernetes.io/tls", "data": {"tls.crt": ""}}),
                ErrorType::Required,
                "data[tls.key]",
            ),
            (
                "docker json",
                json!({"type": "kubernetes.io/dockerconfigjson"}),
                ErrorType::Required,
                "data[.dockerconfigjson]",
            ),
            (
                "docker json bad",
                json!({"type": "kubernetes.io/dockerconfigjson", "data": {".dockerconfigjson": "bm9w"}}),
                ErrorType::Invalid,
                "data[.dockerconfigjson]",
            ),
            (
                "sa token",
                json!({"type": "kubernetes.io/service-account-token"}),
                ErrorType::Required,
                "metadata.annotations[kubernetes.io/service-account.name]",
            ),
            ("basic auth", json!({"type": "kubernetes.io/basic-auth"}), ErrorType::Required, "data[username]"),
            ("ssh", json!({"type": "kubernetes.io/ssh-auth"}), ErrorType::Required, "data[ssh-privatekey]"),
        ]);
        let ok: Secret = prep(
            json!({"type": "kubernetes.io/dockerconfigjson", "stringData": {".dockerconfigjson": "{\"auths\":{}}"}}),
        );
        assert!(ok.validate().is_empty());
        let old: Secret = prep(json!({"type": "Opaque", "data": {"a": "eA=="}, "immutable": true}));
        let new: Secret = prep(
            json!({"type": "kubernetes.io/tls", "data": {"a": "eQ==", "tls.crt": "", "tls.key": ""}, "immutable": true}),
        );
        let errs = new.validate_update(&old);
        assert_eq!(
            strings(&errs),
            vec![
                "type: Invalid value: \"kubernetes.io/tls\": field is immutable".to_string(),
                "data: Forbidden: field is immutable when `immutable` is set".to_string(),
            ]
        );
    }

    #[test]
    fn service_defaults() {
        let s: Service = prep(json!({"spec": {"ports": [{"port": 80}], "clusterIP": "10.0.0.1"}}));
        let v = to_value(&s);
        assert_eq!(v["spec"]["type"], "ClusterIP");
        assert_eq!(v["spec"]["sessionAffinity"], "None");
        assert_eq!(v["spec"]["ports"][0], json!({"port": 80, "protocol": "TCP", "targetPort": 80}));
        assert_eq!(v["spec"]["internalTrafficPolicy"], "Cluster");
        assert_eq!(v["spec"]["clusterIPs"], json!(["10.0.0.1"]));
        assert!(v["spec"].get("externalTrafficPolicy").is_none());
        assert!(s.validate().is_empty(), "{:?}", s.validate());
        let lb: Service = prep(
            json!({"spec": {"type": "LoadBalancer", "ports": [{"port": 80, "targetPort": "http"}], "sessionAffinity": "ClientIP"}}),
        );
        let v = to_value(&lb);
        assert_eq!(v["spec"]["externalTrafficPolicy"], "Cluster");
        assert_eq!(v["spec"]["allocateLoadBalancerNodePorts"], true);
        assert_eq!(v["spec"]["ports"][0]["targetPort"], "http");
        assert_eq!(v["spec"]["sessionAffinityConfig"]["clientIP"]["timeoutSeconds"], 10800);
        assert!(lb.validate().is_empty(), "{:?}", lb.validate());
    }

    #[test]
    fn service_validation() {
        check::<Service>(vec![
            ("no ports", json!({"spec": {}}), ErrorType::Required, "spec.ports"),
            ("port range", json!({"spec": {"ports": [{"port": 0}]}}), ErrorType::Invalid, "spec.ports[0].port"),
            (
                "names needed",
                json!({"spec": {"ports": [{"port": 80}, {"port": 81}]}}),
                ErrorType::Required,
                "spec.ports[0].name",
            ),
            (
                "dup names",
                json!({"spec": {"ports": [{"name": "a", "port": 80}, {"name": "a", "port": 81}]}}),
                ErrorType::Duplicate,
                "spec.ports[1].name",
            ),
            (
                "dup ports",
                json!({"spec": {"ports": [{"name": "a", "port": 80}, {"name": "b", "port": 80}]}}),
                ErrorType::Duplicate,
                "spec.ports[1]",
            ),
            ("type", json!({"spec": {"type": "Magic", "ports": [{"port": 80}]}}), ErrorType::NotSupported, "spec.type"),
            ("external name", json!({"spec": {"type": "ExternalName"}}), ErrorType::Required, "spec.externalName"),
            (
                "external name format",
                json!({"spec": {"type": "ExternalName", "externalName": "Bad_Name"}}),
                ErrorType::Invalid,
                "spec.externalName",
            ),
            (
                "node port on cluster ip",
                json!({"spec": {"ports": [{"port": 80, "nodePort": 30000}]}}),
                ErrorType::Forbidden,
                "spec.ports[0].nodePort",
            ),
            (
                "affinity",
                json!({"spec": {"ports": [{"port": 80}], "sessionAffinity": "Sticky"}}),
                ErrorType::NotSupported,
                "spec.sessionAffinity",
            ),
            (
                "cluster ips mismatch",
                json!({"spec": {"ports": [{"port": 80}], "clusterIP": "10.0.0.1", "clusterIPs": ["10.0.0.2"]}}),
                ErrorType::Invalid,
                "spec.clusterIPs",
            ),
            (
                "bad ip",
                json!({"spec": {"ports": [{"port": 80}], "clusterIP": "x", "clusterIPs": ["x"]}}),
                ErrorType::Invalid,
                "spec.clusterIPs[0]",
            ),
            (
                "external ip",
                json!({"spec": {"ports": [{"port": 80}], "externalIPs": ["127.0.0.1"]}}),
                ErrorType::Invalid,
                "spec.externalIPs[0]",
            ),
            (
                "headless lb",
                json!({"spec": {"type": "LoadBalancer", "clusterIP": "None", "ports": [{"port": 80}]}}),
                ErrorType::Invalid,
                "spec.clusterIPs[0]",
            ),
            (
                "source ranges",
                json!({"spec": {"ports": [{"port": 80}], "loadBalancerSourceRanges": ["10.0.0.0/8"]}}),
                ErrorType::Forbidden,
                "spec.LoadBalancerSourceRanges",
            ),
            (
                "etp",
                json!({"spec": {"ports": [{"port": 80}], "externalTrafficPolicy": "Local"}}),
                ErrorType::Invalid,
                "spec.externalTrafficPolicy",
            ),
            (
                "target port",
                json!({"spec": {"ports": [{"port": 80, "targetPort": "Not-A-Name"}]}}),
                ErrorType::Invalid,
                "spec.ports[0].targetPort",
            ),
        ]);
        let headless: Service = prep(json!({"spec": {"clusterIP": "None"}}));
        assert!(headless.validate().is_empty(), "{:?}", headless.validate());
        let ext: Service = prep(json!({"spec": {"type": "ExternalName", "externalName": "example.com."}}));
        assert!(ext.validate().is_empty(), "{:?}", ext.validate());
    }

    #[test]
    fn service_updates() {
        let old: Service = prep(json!({"spec": {"ports": [{"port": 80}], "clusterIP": "10.0.0.1"}}));
        let same: Service = prep(json!({"spec": {"ports": [{"port": 81}], "clusterIP": "10.0.0.1"}}));
        assert!(same.validate_update(&old).is_empty());
        let moved: Service = prep(json!({"spec": {"ports": [{"port": 80}], "clusterIP": "10.0.0.2"}}));
        assert_eq!(
            strings(&moved.validate_update(&old)),
            vec!["spec.clusterIPs[0]: Invalid value: [\"10.0.0.2\"]: may not change once set"]
        );
        let cleared: Service = prep(json!({"spec": {"ports": [{"port": 80}]}}));
        assert!(has(&cleared.validate_update(&old), ErrorType::Invalid, "spec.clusterIPs[0]"));
        let to_ext: Service = prep(json!({"spec": {"type": "ExternalName", "externalName": "x.example.com"}}));
        assert!(to_ext.validate_update(&old).is_empty());
    }

    #[test]
    fn pods_and_templates() {
        let mirror: Pod = prep(
            json!({"metadata": {"annotations": {"kubernetes.io/config.mirror": "x"}}, "spec": {"containers": [{"name": "c", "image": "x"}]}}),
        );
        assert!(has(&mirror.validate(), ErrorType::Invalid, "metadata.annotations[kubernetes.io/config.mirror]"));
        let empty: Pod = prep(json!({}));
        assert_eq!(strings(&empty.validate()), vec!["spec.containers: Required value"]);
        let tpl: PodTemplate = prep(
            json!({"template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "x"}]}}}),
        );
        assert_eq!(to_value(&tpl)["template"]["spec"]["dnsPolicy"], "ClusterFirst");
        assert!(tpl.validate().is_empty());
        check::<PodTemplate>(vec![
            ("no containers", json!({}), ErrorType::Required, "template.spec.containers"),
            (
                "labels",
                json!({"template": {"metadata": {"labels": {"a": "-"}}}}),
                ErrorType::Invalid,
                "template.labels",
            ),
            (
                "ephemeral",
                json!({"template": {"spec": {"containers": [{"name": "c", "image": "x"}], "ephemeralContainers": [{"name": "e", "image": "x"}]}}}),
                ErrorType::Forbidden,
                "template.spec.ephemeralContainers",
            ),
        ]);
    }

    #[test]
    fn replication_controllers() {
        let rc: ReplicationController = prep(
            json!({"spec": {"template": {"metadata": {"labels": {"app": "x"}}, "spec": {"containers": [{"name": "c", "image": "x"}]}}}}),
        );
        let v = to_value(&rc);
        assert_eq!(v["spec"]["selector"], json!({"app": "x"}));
        assert_eq!(v["metadata"]["labels"], json!({"app": "x"}));
        assert_eq!(v["spec"]["replicas"], 1);
        assert!(rc.validate().is_empty(), "{:?}", rc.validate());
        check::<ReplicationController>(vec![
            ("no template", json!({"spec": {"selector": {"a": "b"}}}), ErrorType::Required, "spec.template"),
            (
                "no selector",
                json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "x"}]}}}}),
                ErrorType::Required,
                "spec.selector",
            ),
            (
                "mismatch",
                json!({"spec": {"selector": {"a": "b"}, "template": {"metadata": {"labels": {"a": "c"}}, "spec": {"containers": [{"name": "c", "image": "x"}]}}}}),
                ErrorType::Invalid,
                "spec.template.metadata.labels",
            ),
            (
                "replicas",
                json!({"spec": {"replicas": -1, "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "x"}]}}}}),
                ErrorType::Invalid,
                "spec.replicas",
            ),
            (
                "restart",
                json!({"spec": {"template": {"metadata": {"labels": {"a": "b"}}, "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "x"}]}}}}),
                ErrorType::NotSupported,
                "spec.template.spec.restartPolicy",
            ),
            (
                "deadline",
                json!({"spec": {"template": {"metadata": {"labels": {"a": "b"}}, "spec": {"activeDeadlineSeconds": 5, "containers": [{"name": "c", "image": "x"}]}}}}),
                ErrorType::Forbidden,
                "spec.template.spec.activeDeadlineSeconds",
            ),
        ]);
    }

    #[test]
    fn nodes() {
        let n: Node = prep(json!({"spec": {"podCIDR": "10.0.0.0/24"}, "status": {"capacity": {"cpu": "4"}}}));
        let v = to_value(&n);
        assert_eq!(v["spec"]["podCIDRs"], json!(["10.0.0.0/24"]));
        assert_eq!(v["status"]["allocatable"], json!({"cpu": "4"}));
        assert!(n.validate().is_empty());
        check::<Node>(vec![
            (
                "taint effect",
                json!({"spec": {"taints": [{"key": "k", "effect": "Sometimes"}]}}),
                ErrorType::NotSupported,
                "metadata.taints[0].effect",
            ),
            (
                "taint required",
                json!({"spec": {"taints": [{"key": "k", "effect": ""}]}}),
                ErrorType::Required,
                "metadata.taints[0].effect",
            ),
            (
                "taint dup",
                json!({"spec": {"taints": [{"key": "k", "effect": "NoSchedule"}, {"key": "k", "value": "v", "effect": "NoSchedule"}]}}),
                ErrorType::Duplicate,
                "metadata.taints[1]",
            ),
            ("cidr", json!({"spec": {"podCIDR": "10.0.0.0"}}), ErrorType::Invalid, "spec.podCIDRs[0]"),
            (
                "two v4",
                json!({"spec": {"podCIDRs": ["10.0.0.0/24", "10.1.0.0/24"]}}),
                ErrorType::Invalid,
                "spec.podCIDRs",
            ),
            ("capacity", json!({"status": {"capacity": {"cpu": "-1"}}}), ErrorType::Invalid, "status.capacity.cpu"),
        ]);
        let old: Node = prep(json!({"spec": {"podCIDR": "10.0.0.0/24", "providerID": "a"}}));
        let new: Node = prep(json!({"spec": {"podCIDR": "10.0.1.0/24", "providerID": "b"}}));
        let errs = new.validate_update(&old);
        assert!(has(&errs, ErrorType::Forbidden, "spec.podCIDRs"));
        assert!(has(&errs, ErrorType::Forbidden, "spec.providerID"));
        let fresh: Node = prep(json!({}));
        assert!(old.validate_update(&fresh).is_empty());
    }

    #[test]
    fn events() {
        let ok: Event = prep(
            json!({"metadata": {"namespace": "ns"}, "involvedObject": {"kind": "Pod", "namespace": "ns", "name": "p"}, "reason": "Started"}),
        );
        assert!(ok.validate().is_empty());
        let cluster: Event =
            prep(json!({"metadata": {"namespace": "default"}, "involvedObject": {"kind": "Node", "name": "n"}}));
        assert!(cluster.validate().is_empty());
        let bad: Event = prep(json!({"metadata": {"namespace": "ns"}, "involvedObject": {"namespace": "other"}}));
        assert_eq!(
            strings(&bad.validate()),
            vec!["involvedObject.namespace: Invalid value: \"other\": does not match event.namespace"]
        );
        let new_style: Event = prep(
            json!({"metadata": {"namespace": "ns"}, "eventTime": "2024-01-01T00:00:00.000000Z", "involvedObject": {"namespace": "ns"}}),
        );
        let errs = new_style.validate();
        for f in ["reportingController", "reportingInstance", "action", "reason"] {
            assert!(has(&errs, ErrorType::Required, f), "{f}: {errs:?}");
        }
    }
}
