//! A pod's resolver configuration (the CRI `DNSConfig` its sandbox's `/etc/resolv.conf` is
//! written from), per `dnsPolicy` and `dnsConfig`, as upstream's kubelet composes it.

use crate::cri::types::DnsConfig;
use k8s_openapi::api::core::v1::Pod;
use std::net::IpAddr;

/// Most nameservers a resolv.conf may list (glibc's limit).
pub const MAX_NAMESERVERS: usize = 3;
/// Most search domains passed to a pod.
pub const MAX_SEARCH_PATHS: usize = 32;
/// Longest search line (all domains joined by spaces).
pub const MAX_SEARCH_LINE_CHARS: usize = 2048;
/// Longest single search domain kept (longer ones abort some resolvers).
const MAX_SEARCH_DOMAIN_CHARS: usize = 253;

/// The cluster's DNS service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterDns {
    /// ClusterIP of the DNS service; `None` when the cluster has none (ClusterFirst then
    /// behaves like Default).
    pub ip: Option<IpAddr>,
    /// Cluster domain, e.g. `cluster.local`.
    pub domain: String,
}

/// What a resolv.conf says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResolvConf {
    /// `nameserver` lines in order.
    pub nameservers: Vec<String>,
    /// Domains of the last `search` (or `domain`) line, trailing dots removed.
    pub searches: Vec<String>,
    /// Options of every `options` line, in order.
    pub options: Vec<String>,
}

/// Parses resolv.conf text; unknown lines and comments (`#`, `;`) are ignored.
pub fn parse_resolv_conf(text: &str) -> ResolvConf {
    let mut conf = ResolvConf::default();
    for line in text.lines() {
        let line = line.split(['#', ';']).next().unwrap_or("");
        let mut fields = line.split_whitespace();
        let Some(keyword) = fields.next() else { continue };
        match keyword {
            "nameserver" => conf.nameservers.extend(fields.next().map(str::to_string)),
            "search" | "domain" => {
                conf.searches = fields.filter(|s| *s != ".").map(|s| s.trim_end_matches('.').to_string()).collect();
            }
            "options" => conf.options.extend(fields.map(str::to_string)),
            _ => {}
        }
    }
    conf
}

/// The DNS configuration of `pod`'s sandbox:
/// - `ClusterFirst` (the default) and `ClusterFirstWithHostNet`: the cluster DNS IP, searches
///   `<ns>.svc.<domain> svc.<domain> <domain>` then the host's, option `ndots:5`. A
///   `ClusterFirst` pod on the host network, or any when the cluster has no DNS IP, gets
///   `Default` instead.
/// - `Default`: the host's resolv.conf (`host_resolv` is its text).
/// - `None`: only what `dnsConfig` says.
///
/// `dnsConfig` nameservers and searches are appended (duplicates dropped), its options override
/// same-named ones; the result is cut to 3 nameservers and 32 search domains (2048 chars).
/// `None` for an unknown `dnsPolicy`.
pub fn dns_config(pod: &Pod, cluster: &ClusterDns, host_resolv: &str) -> Option<DnsConfig> {
    let spec = pod.spec.as_ref();
    let host_network = spec.and_then(|s| s.host_network).unwrap_or(false);
    let policy = spec.and_then(|s| s.dns_policy.as_deref()).filter(|p| !p.is_empty()).unwrap_or("ClusterFirst");
    let cluster_first = match policy {
        "ClusterFirstWithHostNet" => true,
        "ClusterFirst" => !host_network,
        "Default" | "None" => false,
        _ => return None,
    };
    let host = parse_resolv_conf(host_resolv);
    let mut config = match (policy, cluster.ip) {
        ("None", _) => DnsConfig::default(),
        (_, Some(ip)) if cluster_first => {
            let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
            let domain = cluster.domain.trim_end_matches('.');
            let mut searches = Vec::new();
            if !domain.is_empty() {
                searches.extend([format!("{namespace}.svc.{domain}"), format!("svc.{domain}"), domain.to_string()]);
            }
            searches.extend(host.searches);
            DnsConfig { servers: vec![ip.to_string()], searches, options: vec!["ndots:5".into()] }
        }
        _ => DnsConfig { servers: host.nameservers, searches: host.searches, options: host.options },
    };
    if let Some(extra) = spec.and_then(|s| s.dns_config.as_ref()) {
        config.servers.extend(extra.nameservers.iter().flatten().cloned());
        config.searches.extend(extra.searches.iter().flatten().cloned());
        for option in extra.options.iter().flatten() {
            let Some(name) = option.name.as_deref() else { continue };
            let text = match option.value.as_deref().filter(|v| !v.is_empty()) {
                Some(value) => format!("{name}:{value}"),
                None => name.to_string(),
            };
            let existing = config.options.iter().position(|o| o.split(':').next() == Some(name));
            match existing {
                Some(i) => config.options[i] = text,
                None => config.options.push(text),
            }
        }
    }
    dedup(&mut config.servers);
    dedup(&mut config.searches);
    config.servers.truncate(MAX_NAMESERVERS);
    config.searches = fit_searches(config.searches);
    Some(config)
}

/// Drops repeated entries, keeping the first of each.
fn dedup(list: &mut Vec<String>) {
    let mut seen = std::collections::HashSet::new();
    list.retain(|s| seen.insert(s.clone()));
}

/// Cuts a search list to upstream's limits: at most 32 domains, none over 253 chars, the
/// joined line at most 2048 chars (dropping from the end).
fn fit_searches(mut searches: Vec<String>) -> Vec<String> {
    searches.truncate(MAX_SEARCH_PATHS);
    searches.retain(|s| s.len() <= MAX_SEARCH_DOMAIN_CHARS);
    let mut line_len = searches.iter().map(|s| s.len() + 1).sum::<usize>().saturating_sub(1);
    while line_len > MAX_SEARCH_LINE_CHARS {
        let Some(last) = searches.pop() else { break };
        line_len = line_len.saturating_sub(last.len() + 1);
    }
    searches
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const HOST: &str = "# generated\nnameserver 192.168.1.1\nnameserver 192.168.1.2 ; second\nsearch example.com. corp.\noptions edns0 ndots:2\n";

    fn cluster() -> ClusterDns {
        ClusterDns { ip: Some("10.43.0.10".parse().unwrap()), domain: "cluster.local".into() }
    }

    fn pod(spec: serde_json::Value) -> Pod {
        let mut spec = spec;
        spec["containers"] = json!([{"name": "c"}]);
        serde_json::from_value(json!({"metadata": {"name": "p", "namespace": "ns"}, "spec": spec})).unwrap()
    }

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn parses_resolv_conf() {
        let conf = parse_resolv_conf(HOST);
        assert_eq!(conf.nameservers, strings(&["192.168.1.1", "192.168.1.2"]));
        assert_eq!(conf.searches, strings(&["example.com", "corp"]));
        assert_eq!(conf.options, strings(&["edns0", "ndots:2"]));
    }

    #[test]
    fn cluster_first() {
        let config = dns_config(&pod(json!({})), &cluster(), HOST).unwrap();
        assert_eq!(config.servers, strings(&["10.43.0.10"]));
        assert_eq!(
            config.searches,
            strings(&["ns.svc.cluster.local", "svc.cluster.local", "cluster.local", "example.com", "corp"])
        );
        assert_eq!(config.options, strings(&["ndots:5"]));
        let with_host_net =
            dns_config(&pod(json!({"hostNetwork": true, "dnsPolicy": "ClusterFirstWithHostNet"})), &cluster(), HOST);
        assert_eq!(with_host_net, Some(config));
    }

    #[test]
    fn host_network_and_missing_cluster_ip_fall_back_to_default() {
        let default = dns_config(&pod(json!({"dnsPolicy": "Default"})), &cluster(), HOST).unwrap();
        assert_eq!(default.servers, strings(&["192.168.1.1", "192.168.1.2"]));
        assert_eq!(default.searches, strings(&["example.com", "corp"]));
        assert_eq!(default.options, strings(&["edns0", "ndots:2"]));
        let host_net = dns_config(&pod(json!({"hostNetwork": true})), &cluster(), HOST).unwrap();
        assert_eq!(host_net, default);
        let no_ip = ClusterDns { ip: None, ..cluster() };
        assert_eq!(dns_config(&pod(json!({})), &no_ip, HOST).unwrap(), default);
    }

    #[test]
    fn none_with_dns_config_and_merging() {
        let p = pod(json!({"dnsPolicy": "None", "dnsConfig": {
            "nameservers": ["1.1.1.1"], "searches": ["a.example"],
            "options": [{"name": "ndots", "value": "2"}, {"name": "edns0"}]
        }}));
        let config = dns_config(&p, &cluster(), HOST).unwrap();
        assert_eq!(config.servers, strings(&["1.1.1.1"]));
        assert_eq!(config.searches, strings(&["a.example"]));
        assert_eq!(config.options, strings(&["ndots:2", "edns0"]));

        let p = pod(json!({"dnsConfig": {
            "nameservers": ["10.43.0.10", "1.1.1.1", "8.8.8.8", "9.9.9.9"], "searches": ["corp", "x.y"],
            "options": [{"name": "ndots", "value": "1"}, {"name": "single-request"}]
        }}));
        let config = dns_config(&p, &cluster(), HOST).unwrap();
        assert_eq!(config.servers, strings(&["10.43.0.10", "1.1.1.1", "8.8.8.8"]));
        assert_eq!(
            config.searches,
            strings(&["ns.svc.cluster.local", "svc.cluster.local", "cluster.local", "example.com", "corp", "x.y"])
        );
        assert_eq!(config.options, strings(&["ndots:1", "single-request"]));
    }

    #[test]
    fn search_limits_and_unknown_policy() {
        let many: Vec<String> = (0..40).map(|i| format!("d{i}.example")).collect();
        let p = pod(json!({"dnsPolicy": "None", "dnsConfig": {"searches": many}}));
        let config = dns_config(&p, &cluster(), "").unwrap();
        assert_eq!(config.searches.len(), MAX_SEARCH_PATHS);
        assert_eq!(config.searches[0], "d0.example");

        let long: Vec<String> = (0..20).map(|i| format!("{i:03}{}", "x".repeat(200))).collect();
        let p = pod(json!({"dnsPolicy": "None", "dnsConfig": {"searches": long.clone()}}));
        let config = dns_config(&p, &cluster(), "").unwrap();
        assert!(config.searches.join(" ").len() <= MAX_SEARCH_LINE_CHARS);
        assert_eq!(config.searches, long[..10].to_vec());

        let too_long = "y".repeat(300);
        let p = pod(json!({"dnsPolicy": "None", "dnsConfig": {"searches": [too_long, "ok"]}}));
        assert_eq!(dns_config(&p, &cluster(), "").unwrap().searches, strings(&["ok"]));

        assert_eq!(dns_config(&pod(json!({"dnsPolicy": "Bogus"})), &cluster(), HOST), None);
    }
}
