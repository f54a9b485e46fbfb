//! The desired nftables ruleset of a node, computed from Services and EndpointSlices.
//!
//! The layout follows upstream kube-proxy's nftables mode (`pkg/proxy/nftables`), written anew:
//!
//! * `nat-prerouting` / `nat-output` (nat, priority -100) jump to `services`, which looks the
//!   destination up in the verdict map `service-ips` (`ip . proto . port`, cluster IPs, external
//!   IPs and LoadBalancer ingress IPs) and, for destinations that are local addresses of this
//!   node (`fib daddr type local`, loopback excluded), in `service-nodeports` (`proto . port`).
//! * Each service port has a `service-…` chain (cluster-wide endpoints) and, where a traffic
//!   policy is `Local`, a `local-…` chain (this node's endpoints). NodePorts, external and
//!   LoadBalancer IPs enter through an `external-…` chain that applies `externalTrafficPolicy`.
//! * A policy chain picks an endpoint at random and translates in one rule:
//!   `meta l4proto tcp dnat ip to numgen random mod N map { 0 : IP . PORT, … }` (one endpoint:
//!   `dnat ip to IP:PORT`). Upstream has an `endpoint-…` chain per endpoint instead, reached
//!   through `numgen random mod N vmap { 0 : goto endpoint-…, … }`; here only Services with
//!   session affinity have those (below). The reason is cost: every `nft` run dumps all chains
//!   of the machine before it does anything, so with 10,000 endpoint chains even a one-rule
//!   change costs about 60 ms, and a full load about twice as long.
//! * `sessionAffinity: ClientIP`: the policy chain first looks the client up in one timed set
//!   per endpoint (`affinity-…`, `flags dynamic,timeout`), then picks with
//!   `numgen … vmap { … goto endpoint-… }`; the endpoint chain records the client
//!   (`update @affinity-… { ip saddr }`) and does `meta l4proto tcp dnat ip to IP:PORT`.
//! * Masquerade is a mark (`mark-for-masquerade`) set in the service chains and acted on in
//!   `nat-postrouting`. Hairpin traffic (a pod reaching itself through a Service) is marked
//!   there too, with one lookup of `source . destination` in the set `hairpin-endpoints`
//!   (`IP . IP` for every endpoint) instead of upstream's rule per endpoint chain.
//! * `loadBalancerSourceRanges`: a filter chain on prerouting and output (priority -110, before
//!   NAT) looks new connections up in the verdict map `firewall-ips` (LoadBalancer IP . proto .
//!   port) and sends them to a `firewall-…` chain per service port that drops sources outside
//!   the ranges. As upstream, only the LoadBalancer IPs are filtered, not the node ports.
//! * Services without usable endpoints are never translated: the filter chains (priority -110,
//!   before NAT) send them to `reject-chain` (TCP reset, else ICMP port unreachable) through the
//!   `no-endpoint-services` / `no-endpoint-nodeports` maps; a cluster IP on a port it does not
//!   serve is rejected and any other address of the service range dropped after NAT, so nothing
//!   for the service range is ever routed out.
//!
//! [`Ruleset::render`] writes the whole table as one `nft -f` transaction (create, delete,
//! recreate: atomic and idempotent); [`Ruleset::render_update`] writes only the difference from
//! the ruleset in place (changed chains flushed and refilled, map elements added and deleted),
//! which keeps a one-endpoint change cheap with thousands of Services. Output is deterministic.
//! [`Assembly`] keeps the same table between syncs, recomputing only changed Services, and
//! renders the same difference from what it touched.
//!
//! Topology aware routing: cluster-wide traffic (not the `Local` policies) goes only to the
//! ready endpoints whose `hints.forZones` name this node's zone, when every ready endpoint has
//! hints and at least one names it (upstream's `canUseTopology`); otherwise to all of them.

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;
use std::net::Ipv4Addr;

/// The label tying an EndpointSlice to its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
/// Services with this label belong to another proxy and are skipped.
pub const SERVICE_PROXY_NAME_LABEL: &str = "service.kubernetes.io/service-proxy-name";
/// Services with this label are not proxied at all.
pub const HEADLESS_LABEL: &str = "service.kubernetes.io/headless";
/// The packet mark bit meaning "masquerade in postrouting" (upstream's default).
pub const MASQUERADE_MARK: u32 = 0x4000;
/// Default `sessionAffinityConfig.clientIP.timeoutSeconds` (3 hours).
pub const DEFAULT_AFFINITY_TIMEOUT: i32 = 10800;

/// An IPv4 CIDR.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Cidr {
    /// Network address (host bits cleared).
    pub addr: Ipv4Addr,
    /// Prefix length, 0–32.
    pub prefix: u8,
}

impl Cidr {
    fn mask(prefix: u8) -> u32 {
        if prefix == 0 { 0 } else { u32::MAX << (32 - u32::from(prefix)) }
    }

    /// Whether `ip` is inside this CIDR.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & Self::mask(self.prefix) == u32::from(self.addr)
    }
}

impl std::str::FromStr for Cidr {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> anyhow::Result<Self> {
        let (a, p) = s.split_once('/').ok_or_else(|| anyhow::anyhow!("{s:?} is not a CIDR (like 10.42.0.0/16)"))?;
        let addr: Ipv4Addr = a.parse().map_err(|_| anyhow::anyhow!("{s:?} is not an IPv4 CIDR"))?;
        let prefix: u8 = p.parse().map_err(|_| anyhow::anyhow!("{s:?} has a bad prefix length"))?;
        if prefix > 32 {
            anyhow::bail!("{s:?} has a prefix length over 32");
        }
        Ok(Cidr { addr: Ipv4Addr::from(u32::from(addr) & Self::mask(prefix)), prefix })
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// What the ruleset needs to know about the node it runs on.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeView {
    /// This node's name: endpoints with this `nodeName` are local.
    pub node_name: String,
    /// The cluster's pod range: traffic to a cluster IP from outside it is masqueraded, and
    /// pods reaching an external address of an `externalTrafficPolicy: Local` Service get the
    /// cluster-wide endpoints.
    pub cluster_cidr: Option<Cidr>,
    /// The Service range: addresses in it that no Service port claims are dropped after NAT.
    pub service_cidr: Option<Cidr>,
    /// This node's pod range, when bridged traffic does not pass netfilter (no
    /// `bridge-nf-call-iptables`): connections from local pods to local endpoints are then
    /// masqueraded so the reply comes back through the host and is un-NATed.
    pub masquerade_local_pods: Option<Cidr>,
    /// This node's zone (its `topology.kubernetes.io/zone` label): cluster-wide traffic goes
    /// to the endpoints hinted for it when the hints allow (topology aware routing).
    pub zone: Option<String>,
}

/// Whether a named object is a set or a verdict/data map.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SetKind {
    /// `set`.
    Set,
    /// `map`.
    Map,
}

/// A named set or map of the table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Set {
    /// Set or map.
    pub kind: SetKind,
    /// The declaration inside the braces, e.g. `type ipv4_addr; flags dynamic,timeout; timeout 10800s;`.
    pub spec: String,
    /// Static elements: key → value (`""` for sets). Dynamic elements (affinity) are not listed.
    pub elements: BTreeMap<String, String>,
}

/// A chain: a base chain has a hook declaration.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Chain {
    /// `type nat hook prerouting priority -100; policy accept;` for base chains.
    pub base: Option<String>,
    /// Rules in order.
    pub rules: Vec<String>,
}

/// One nftables table's content.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ruleset {
    /// Sets and maps by name.
    pub sets: BTreeMap<String, Set>,
    /// Chains by name.
    pub chains: BTreeMap<String, Chain>,
    /// Service ports programmed (with or without endpoints).
    pub service_ports: usize,
    /// Endpoints programmed (once per policy chain using them).
    pub endpoints: usize,
}

/// One endpoint of a service port, merged over slices.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Endpoint {
    ip: Ipv4Addr,
    port: u16,
    ready: bool,
    serving: bool,
    terminating: bool,
    local: bool,
    /// Whether the endpoint has zone hints at all (`hints.forZones` not empty).
    hinted: bool,
    /// Whether one of its zone hints is this node's zone.
    for_zone: bool,
}

/// Upstream's `canUseTopology`: cluster-wide traffic keeps to the endpoints hinted for this
/// node's zone only when every ready endpoint has hints and at least one is hinted for the
/// zone (so the node has one); otherwise all endpoints are used.
fn use_topology(eps: &[Endpoint]) -> bool {
    eps.iter().filter(|e| e.ready).all(|e| e.hinted) && eps.iter().any(|e| e.ready && e.for_zone)
}

/// Upstream's endpoint categorisation: ready endpoints, or if there are none, the serving
/// terminating ones; `local` restricts to this node's, `topology` (cluster-wide only) to the
/// ready ones hinted for this node's zone.
fn usable(eps: &[Endpoint], local: bool, topology: bool) -> Vec<Endpoint> {
    let candidates: Vec<Endpoint> = eps.iter().copied().filter(|e| !local || e.local).collect();
    let ready: Vec<Endpoint> =
        candidates.iter().copied().filter(|e| e.ready && (local || !topology || e.for_zone)).collect();
    if !ready.is_empty() {
        return ready;
    }
    candidates.into_iter().filter(|e| e.serving && e.terminating).collect()
}

/// FNV-1a folded into 8 base32 characters: the stable prefix that keeps names unique.
fn name_hash(s: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    (0..8).map(|i| ALPHABET[((h >> (i * 5)) & 31) as usize] as char).collect()
}

/// Keeps a readable name part to characters nft identifiers take, and bounded in length.
fn sanitize(s: &str) -> String {
    let cleaned: String = s
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/') { c } else { '_' })
        .collect();
    cleaned.chars().take(180).collect()
}

fn chain_name(prefix: &str, id: &str) -> String {
    format!("{prefix}-{}-{}", name_hash(id), sanitize(id))
}

fn protocol(p: Option<&str>) -> Option<&'static str> {
    match p.unwrap_or("TCP") {
        "TCP" => Some("tcp"),
        "UDP" => Some("udp"),
        "SCTP" => Some("sctp"),
        _ => None,
    }
}

fn v4(s: &str) -> Option<Ipv4Addr> {
    s.parse().ok()
}

/// The fixed part of the table: hooks, dispatch chains, masquerade and reject.
fn base(node: &NodeView) -> Ruleset {
    let mut rs = Ruleset::default();
    let mut chain = |name: &str, base: Option<&str>, rules: &[&str]| {
        rs.chains.insert(
            name.to_string(),
            Chain { base: base.map(String::from), rules: rules.iter().map(|r| r.to_string()).collect() },
        );
    };
    chain("nat-prerouting", Some("type nat hook prerouting priority -100; policy accept;"), &["jump services"]);
    chain("nat-output", Some("type nat hook output priority -100; policy accept;"), &["jump services"]);
    chain("nat-postrouting", Some("type nat hook postrouting priority 100; policy accept;"), &["jump masquerading"]);
    chain(
        "filter-input",
        Some("type filter hook input priority -110; policy accept;"),
        &["ct state new jump nodeport-endpoints-check", "ct state new jump service-endpoints-check"],
    );
    chain(
        "filter-forward",
        Some("type filter hook forward priority -110; policy accept;"),
        &["ct state new jump service-endpoints-check", "ct state new jump cluster-ips-check"],
    );
    chain(
        "filter-output",
        Some("type filter hook output priority -110; policy accept;"),
        &["ct state new jump service-endpoints-check", "ct state new jump firewall-check"],
    );
    chain(
        "filter-prerouting",
        Some("type filter hook prerouting priority -110; policy accept;"),
        &["ct state new jump firewall-check"],
    );
    chain("firewall-check", None, &["ip daddr . meta l4proto . th dport vmap @firewall-ips"]);
    chain(
        "filter-output-post-dnat",
        Some("type filter hook output priority -90; policy accept;"),
        &["ct state new jump cluster-ips-check"],
    );
    chain(
        "services",
        None,
        &[
            "ip daddr . meta l4proto . th dport vmap @service-ips",
            "fib daddr type local ip daddr != 127.0.0.0/8 meta l4proto . th dport vmap @service-nodeports",
        ],
    );
    chain("service-endpoints-check", None, &["ip daddr . meta l4proto . th dport vmap @no-endpoint-services"]);
    chain(
        "nodeport-endpoints-check",
        None,
        &["fib daddr type local ip daddr != 127.0.0.0/8 meta l4proto . th dport vmap @no-endpoint-nodeports"],
    );
    let mark = format!("meta mark set meta mark | {MASQUERADE_MARK:#x}");
    chain("mark-for-masquerade", None, &[&mark]);
    let unmark = format!("meta mark set meta mark ^ {MASQUERADE_MARK:#x}");
    let skip = format!("meta mark & {MASQUERADE_MARK:#x} == 0 return");
    let mut masq = vec!["ct status dnat ip saddr . ip daddr @hairpin-endpoints jump mark-for-masquerade".to_string()];
    if let Some(pods) = node.masquerade_local_pods {
        masq.push(format!("ct status dnat ip saddr {pods} ip daddr {pods} jump mark-for-masquerade"));
    }
    masq.extend([skip, unmark, "masquerade fully-random".to_string()]);
    chain("masquerading", None, &masq.iter().map(String::as_str).collect::<Vec<_>>());
    chain("reject-chain", None, &["meta l4proto tcp reject with tcp reset", "reject"]);
    let mut check = vec!["ip daddr @cluster-ips reject".to_string()];
    if let Some(range) = node.service_cidr {
        check.push(format!("ip daddr {range} drop"));
    }
    rs.chains.insert("cluster-ips-check".into(), Chain { base: None, rules: check });

    rs.sets = fixed_sets();
    rs
}

/// The fixed sets and maps, empty.
fn fixed_sets() -> BTreeMap<String, Set> {
    let set = |kind: SetKind, spec: &str| Set { kind, spec: spec.to_string(), elements: BTreeMap::new() };
    BTreeMap::from([
        ("cluster-ips".to_string(), set(SetKind::Set, "type ipv4_addr;")),
        ("firewall-ips".to_string(), set(SetKind::Map, "type ipv4_addr . inet_proto . inet_service : verdict;")),
        ("hairpin-endpoints".to_string(), set(SetKind::Set, "type ipv4_addr . ipv4_addr;")),
        ("service-ips".to_string(), set(SetKind::Map, "type ipv4_addr . inet_proto . inet_service : verdict;")),
        ("service-nodeports".to_string(), set(SetKind::Map, "type inet_proto . inet_service : verdict;")),
        (
            "no-endpoint-services".to_string(),
            set(SetKind::Map, "type ipv4_addr . inet_proto . inet_service : verdict;"),
        ),
        ("no-endpoint-nodeports".to_string(), set(SetKind::Map, "type inet_proto . inet_service : verdict;")),
    ])
}

/// Adds a Service's part (`fragment`) to the table.
fn merge(rs: &mut Ruleset, fragment: &Ruleset) {
    rs.chains.extend(fragment.chains.iter().map(|(k, v)| (k.clone(), v.clone())));
    for (name, set) in &fragment.sets {
        match rs.sets.get_mut(name) {
            Some(s) => s.elements.extend(set.elements.iter().map(|(k, v)| (k.clone(), v.clone()))),
            None => {
                rs.sets.insert(name.clone(), set.clone());
            }
        }
    }
    rs.service_ports += fragment.service_ports;
    rs.endpoints += fragment.endpoints;
}

/// The part of one Service, computed alone from its own slices.
fn fragment(svc: &Service, slices: &[&EndpointSlice], node: &NodeView) -> Ruleset {
    let mut f = Ruleset { sets: fixed_sets(), ..Ruleset::default() };
    add_service(&mut f, svc, slices, node);
    f.sets.retain(|_, s| !s.elements.is_empty() || s.spec.contains("dynamic"));
    f
}

/// Endpoints of every service port, keyed by (namespace, service name), from the slices.
type SliceIndex<'a> = HashMap<(&'a str, &'a str), Vec<&'a EndpointSlice>>;

fn index_slices<'a>(slices: impl IntoIterator<Item = &'a EndpointSlice>) -> SliceIndex<'a> {
    let mut index: SliceIndex<'a> = HashMap::new();
    for s in slices {
        if s.address_type != "IPv4" {
            continue;
        }
        let (Some(ns), Some(svc)) =
            (s.metadata.namespace.as_deref(), s.metadata.labels.as_ref().and_then(|l| l.get(SERVICE_NAME_LABEL)))
        else {
            continue;
        };
        index.entry((ns, svc.as_str())).or_default().push(s);
    }
    index
}

/// The endpoints of the service port named `port_name` with protocol `proto` (as the slices'
/// ports name them: the resolved target port, named or numeric), merged over slices.
fn endpoints_of(slices: &[&EndpointSlice], port_name: &str, proto: &str, node: &NodeView) -> Vec<Endpoint> {
    let mut merged: BTreeMap<(Ipv4Addr, u16), Endpoint> = BTreeMap::new();
    for slice in slices {
        let Some(port) =
            slice.ports.iter().flatten().find(|p| {
                p.name.as_deref().unwrap_or("") == port_name && protocol(p.protocol.as_deref()) == Some(proto)
            })
        else {
            continue;
        };
        let Some(number) = port.port.and_then(|p| u16::try_from(p).ok()).filter(|p| *p > 0) else { continue };
        for ep in &slice.endpoints {
            let Some(ip) = ep.addresses.first().and_then(|a| v4(a)) else { continue };
            let c = ep.conditions.as_ref();
            let ready = c.and_then(|c| c.ready).unwrap_or(true);
            let serving = c.and_then(|c| c.serving).unwrap_or(ready);
            let terminating = c.and_then(|c| c.terminating).unwrap_or(false);
            let local = ep.node_name.as_deref().is_some_and(|n| !n.is_empty() && n == node.node_name);
            let zones = ep.hints.as_ref().and_then(|h| h.for_zones.as_deref()).unwrap_or_default();
            let hinted = !zones.is_empty();
            let for_zone = node.zone.as_deref().is_some_and(|z| !z.is_empty() && zones.iter().any(|f| f.name == z));
            let new = Endpoint { ip, port: number, ready, serving, terminating, local, hinted, for_zone };
            merged
                .entry((ip, number))
                .and_modify(|old| {
                    // The same address in two slices (during a move): the more usable one wins.
                    if (new.ready, new.serving) > (old.ready, old.serving) {
                        *old = new;
                    }
                })
                .or_insert(new);
        }
    }
    merged.into_values().collect()
}

/// Whether the proxy programs this Service at all (upstream's ShouldSkipService).
pub(crate) fn proxied(svc: &Service) -> bool {
    let Some(spec) = &svc.spec else { return false };
    if spec.type_.as_deref() == Some("ExternalName") {
        return false;
    }
    let ip = spec.cluster_ip.as_deref().unwrap_or("");
    if ip.is_empty() || ip == "None" {
        return false;
    }
    let labels = svc.metadata.labels.as_ref();
    !labels.is_some_and(|l| l.contains_key(SERVICE_PROXY_NAME_LABEL) || l.contains_key(HEADLESS_LABEL))
}

/// Computes the table for `services` and their `slices` on `node`.
pub fn desired<'a>(
    services: impl IntoIterator<Item = &'a Service>,
    slices: impl IntoIterator<Item = &'a EndpointSlice>,
    node: &NodeView,
) -> Ruleset {
    let mut rs = base(node);
    let index = index_slices(slices);
    let mut sorted: Vec<&Service> = services.into_iter().filter(|s| proxied(s)).collect();
    sorted.sort_by(|a, b| {
        (a.metadata.namespace.as_deref(), a.metadata.name.as_deref())
            .cmp(&(b.metadata.namespace.as_deref(), b.metadata.name.as_deref()))
    });
    for svc in sorted {
        let key = (svc.metadata.namespace.as_deref().unwrap_or(""), svc.metadata.name.as_deref().unwrap_or(""));
        merge(&mut rs, &fragment(svc, index.get(&key).map(Vec::as_slice).unwrap_or(&[]), node));
    }
    rs
}

/// What an entry point (cluster IP or external address) leads to.
enum Target {
    /// `goto <chain>`.
    Chain(String),
    /// No usable endpoints for this traffic: the filter verdict (`goto reject-chain` or `drop`).
    Filtered(&'static str),
}

fn add_service(rs: &mut Ruleset, svc: &Service, slices: &[&EndpointSlice], node: &NodeView) {
    let Some(spec) = &svc.spec else { return };
    let (Some(ns), Some(name)) = (svc.metadata.namespace.as_deref(), svc.metadata.name.as_deref()) else { return };
    let mut cluster_ips: Vec<Ipv4Addr> = match &spec.cluster_ips {
        Some(ips) if !ips.is_empty() => ips.iter().filter_map(|s| v4(s)).collect(),
        _ => spec.cluster_ip.as_deref().and_then(v4).into_iter().collect(),
    };
    cluster_ips.dedup();
    let mut external_ips: BTreeSet<Ipv4Addr> =
        spec.external_ips.iter().flatten().filter_map(|s| v4(s)).filter(|ip| !cluster_ips.contains(ip)).collect();
    let mut lb_ips: BTreeSet<Ipv4Addr> = BTreeSet::new();
    if spec.type_.as_deref() == Some("LoadBalancer") {
        let ingress = svc.status.as_ref().and_then(|s| s.load_balancer.as_ref()).and_then(|l| l.ingress.as_ref());
        for i in ingress.into_iter().flatten() {
            // ipMode Proxy: the load balancer delivers to the node itself, no VIP to capture.
            if i.ip_mode.as_deref() != Some("Proxy") {
                lb_ips.extend(i.ip.as_deref().and_then(v4).filter(|ip| !cluster_ips.contains(ip)));
            }
        }
        external_ips.extend(lb_ips.iter().copied());
    }
    // `loadBalancerSourceRanges`: traffic to the LoadBalancer IPs from elsewhere is dropped, before
    // NAT (upstream's firewall chains). Node ports and external IPs are not filtered, as upstream.
    let source_ranges: Vec<Cidr> =
        spec.load_balancer_source_ranges.iter().flatten().filter_map(|r| r.trim().parse().ok()).collect();
    let firewalled = !lb_ips.is_empty() && !source_ranges.is_empty();
    let etp_local = spec.external_traffic_policy.as_deref() == Some("Local");
    let itp_local = spec.internal_traffic_policy.as_deref() == Some("Local");
    let affinity = (spec.session_affinity.as_deref() == Some("ClientIP")).then(|| {
        spec.session_affinity_config
            .as_ref()
            .and_then(|c| c.client_ip.as_ref())
            .and_then(|c| c.timeout_seconds)
            .filter(|t| *t > 0)
            .unwrap_or(DEFAULT_AFFINITY_TIMEOUT)
    });
    let by_type_has_node_ports = matches!(spec.type_.as_deref(), Some("NodePort") | Some("LoadBalancer"));

    if let Some(set) = rs.sets.get_mut("cluster-ips") {
        set.elements.extend(cluster_ips.iter().map(|ip| (ip.to_string(), String::new())));
    }
    for port in spec.ports.iter().flatten() {
        let Some(proto) = protocol(port.protocol.as_deref()) else { continue };
        let Ok(number) = u16::try_from(port.port) else { continue };
        let port_name = port.name.as_deref().unwrap_or("");
        rs.service_ports += 1;
        let id = format!(
            "{ns}/{name}/{proto}/{}",
            if port_name.is_empty() { number.to_string() } else { port_name.to_string() }
        );
        let all = endpoints_of(slices, port_name, proto, node);
        let cluster_eps = usable(&all, false, use_topology(&all));
        let local_eps = usable(&all, true, false);
        let node_port = port.node_port.and_then(|p| u16::try_from(p).ok()).filter(|p| *p > 0 && by_type_has_node_ports);
        let uses_external = node_port.is_some() || !external_ips.is_empty();

        // Endpoint chains for every endpoint some policy chain uses.
        let mut needed: BTreeMap<(Ipv4Addr, u16), Endpoint> = BTreeMap::new();
        let mut policy_chains: Vec<(String, Vec<Endpoint>, bool)> = Vec::new();
        let cluster_chain = chain_name("service", &id);
        let local_chain = chain_name("local", &id);
        let internal = if itp_local { (&local_chain, &local_eps) } else { (&cluster_chain, &cluster_eps) };
        let external = if etp_local { (&local_chain, &local_eps) } else { (&cluster_chain, &cluster_eps) };
        let mut want = |chain: &String, eps: &Vec<Endpoint>, internal: bool| {
            if eps.is_empty() {
                return;
            }
            if let Some(entry) = policy_chains.iter_mut().find(|(c, _, _)| c == chain) {
                entry.2 |= internal;
                return;
            }
            policy_chains.push((chain.clone(), eps.clone(), internal));
        };
        want(internal.0, internal.1, true);
        if uses_external {
            want(external.0, external.1, false);
            // Pods and the host itself reaching an external address of an ETP=Local Service get
            // the cluster-wide endpoints (upstream's short-circuit).
            if etp_local && !external.1.is_empty() {
                want(&cluster_chain, &cluster_eps, false);
            }
        }
        let filtered = if cluster_eps.is_empty() { "goto reject-chain" } else { "drop" };
        let internal_target =
            if internal.1.is_empty() { Target::Filtered(filtered) } else { Target::Chain(internal.0.clone()) };
        let external_chain = chain_name("external", &id);
        let external_target =
            if external.1.is_empty() { Target::Filtered(filtered) } else { Target::Chain(external_chain.clone()) };

        for (chain, eps, is_internal) in &policy_chains {
            let mut rules = Vec::new();
            if *is_internal && let Some(cidr) = node.cluster_cidr {
                for ip in &cluster_ips {
                    rules.push(format!(
                        "ip daddr {ip} {proto} dport {number} ip saddr != {cidr} jump mark-for-masquerade"
                    ));
                }
            }
            if affinity.is_some() {
                for e in eps.iter() {
                    let ep_id = format!("{id}__{}/{}", e.ip, e.port);
                    rules.push(format!(
                        "ip saddr @{} goto {}",
                        chain_name("affinity", &ep_id),
                        chain_name("endpoint", &ep_id)
                    ));
                }
            }
            if affinity.is_some() {
                // Affinity needs an endpoint chain per endpoint to remember the client in.
                let arms: Vec<String> = eps
                    .iter()
                    .enumerate()
                    .map(|(i, e)| {
                        format!("{i} : goto {}", chain_name("endpoint", &format!("{id}__{}/{}", e.ip, e.port)))
                    })
                    .collect();
                rules.push(format!("numgen random mod {} vmap {{ {} }}", eps.len(), arms.join(", ")));
                for e in eps.iter() {
                    needed.insert((e.ip, e.port), *e);
                }
            } else if let [e] = eps.as_slice() {
                rules.push(format!("meta l4proto {proto} dnat ip to {}:{}", e.ip, e.port));
            } else {
                let arms: Vec<String> =
                    eps.iter().enumerate().map(|(i, e)| format!("{i} : {} . {}", e.ip, e.port)).collect();
                rules.push(format!(
                    "meta l4proto {proto} dnat ip to numgen random mod {} map {{ {} }}",
                    eps.len(),
                    arms.join(", ")
                ));
            }
            rs.chains.insert(chain.clone(), Chain { base: None, rules });
            if let Some(set) = rs.sets.get_mut("hairpin-endpoints") {
                set.elements.extend(eps.iter().map(|e| (format!("{} . {}", e.ip, e.ip), String::new())));
            }
            rs.endpoints += eps.len();
        }
        for e in needed.values() {
            let ep_id = format!("{id}__{}/{}", e.ip, e.port);
            let mut rules = Vec::new();
            if let Some(timeout) = affinity {
                let set = chain_name("affinity", &ep_id);
                rs.sets.insert(
                    set.clone(),
                    Set {
                        kind: SetKind::Set,
                        spec: format!("type ipv4_addr; flags dynamic,timeout; timeout {timeout}s;"),
                        elements: BTreeMap::new(),
                    },
                );
                rules.push(format!("update @{set} {{ ip saddr }}"));
            }
            rules.push(format!("meta l4proto {proto} dnat ip to {}:{}", e.ip, e.port));
            rs.chains.insert(chain_name("endpoint", &ep_id), Chain { base: None, rules });
        }

        if uses_external && let Target::Chain(_) = external_target {
            let mut rules = Vec::new();
            if etp_local {
                if let Some(cidr) = node.cluster_cidr {
                    rules.push(format!("ip saddr {cidr} goto {cluster_chain}"));
                }
                rules.push("fib saddr type local jump mark-for-masquerade".to_string());
                rules.push(format!("fib saddr type local goto {cluster_chain}"));
                rules.push(format!("goto {local_chain}"));
            } else {
                rules.push("jump mark-for-masquerade".to_string());
                rules.push(format!("goto {cluster_chain}"));
            }
            rs.chains.insert(external_chain.clone(), Chain { base: None, rules });
        }

        let mut put = |map: &str, key: String, value: String| {
            if let Some(m) = rs.sets.get_mut(map) {
                m.elements.insert(key, value);
            }
        };
        for ip in &cluster_ips {
            let key = format!("{ip} . {proto} . {number}");
            match &internal_target {
                Target::Chain(c) => put("service-ips", key, format!("goto {c}")),
                Target::Filtered(v) => put("no-endpoint-services", key, v.to_string()),
            }
        }
        for ip in &external_ips {
            let key = format!("{ip} . {proto} . {number}");
            match &external_target {
                Target::Chain(c) => put("service-ips", key, format!("goto {c}")),
                Target::Filtered(v) => put("no-endpoint-services", key, v.to_string()),
            }
        }
        if let Some(np) = node_port {
            let key = format!("{proto} . {np}");
            match &external_target {
                Target::Chain(c) => put("service-nodeports", key, format!("goto {c}")),
                Target::Filtered(v) => put("no-endpoint-nodeports", key, v.to_string()),
            }
        }
        if firewalled {
            let chain = chain_name("firewall", &id);
            let ranges: Vec<String> = source_ranges.iter().map(Cidr::to_string).collect();
            let rule = format!("ip saddr != {{ {} }} drop", ranges.join(", "));
            rs.chains.insert(chain.clone(), Chain { base: None, rules: vec![rule] });
            if let Some(map) = rs.sets.get_mut("firewall-ips") {
                for ip in &lb_ips {
                    map.elements.insert(format!("{ip} . {proto} . {number}"), format!("goto {chain}"));
                }
            }
        }
    }
}

fn kind_word(kind: SetKind) -> &'static str {
    match kind {
        SetKind::Set => "set",
        SetKind::Map => "map",
    }
}

fn element_list(s: &Set, keys: &[&String]) -> String {
    keys.iter()
        .map(|k| match s.kind {
            SetKind::Set => k.to_string(),
            SetKind::Map => format!("{k} : {}", s.elements[k.as_str()]),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

impl Ruleset {
    /// The whole table as one `nft -f` transaction that replaces any previous content of
    /// `table` (created empty first so the delete never fails).
    pub fn render(&self, table: &str) -> String {
        let mut out = format!("add table inet {table}\ndelete table inet {table}\n");
        out.push_str(&self.render_create(table));
        out
    }

    /// The whole table as a transaction that creates it; `table` must not exist.
    pub fn render_create(&self, table: &str) -> String {
        let mut out = String::with_capacity(256 + self.chains.len() * 200);
        let _ = writeln!(out, "add table inet {table}");
        for (name, chain) in &self.chains {
            self.write_chain_decl(&mut out, table, name, chain);
        }
        for (name, set) in &self.sets {
            write_set(&mut out, table, name, set);
        }
        for (name, chain) in &self.chains {
            write_rules(&mut out, table, name, chain);
        }
        out
    }

    fn write_chain_decl(&self, out: &mut String, table: &str, name: &str, chain: &Chain) {
        match &chain.base {
            Some(b) => {
                let _ = writeln!(out, "add chain inet {table} {name} {{ {b} }}");
            }
            None => {
                let _ = writeln!(out, "add chain inet {table} {name}");
            }
        }
    }

    /// The transaction that turns `old` (what the kernel holds) into `self`, touching only
    /// what differs: [`Update::Unchanged`] when nothing does, [`Update::Replace`] when a hook
    /// changed and only a new table will do.
    pub fn render_update(&self, old: &Ruleset, table: &str) -> Update {
        if self.sets == old.sets && self.chains == old.chains {
            return Update::Unchanged;
        }
        let base_changed = self.chains.iter().any(|(n, c)| old.chains.get(n).is_some_and(|o| o.base != c.base))
            || self.chains.iter().any(|(n, c)| c.base.is_some() && !old.chains.contains_key(n))
            || old.chains.iter().any(|(n, c)| c.base.is_some() && !self.chains.contains_key(n));
        if base_changed {
            return Update::Replace;
        }
        let mut out = String::new();
        // Sets whose declaration changed (an affinity timeout) are recreated: the chains using
        // them are emptied first and refilled below.
        let respec: BTreeSet<&String> = self
            .sets
            .iter()
            .filter(|(n, s)| old.sets.get(*n).is_some_and(|o| o.kind != s.kind || o.spec != s.spec))
            .map(|(n, _)| n)
            .collect();
        let users = |chains: &BTreeMap<String, Chain>| -> BTreeSet<String> {
            chains
                .iter()
                .filter(|(_, c)| c.rules.iter().any(|r| respec.iter().any(|s| r.contains(&format!("@{s} ")))))
                .map(|(n, _)| n.clone())
                .collect()
        };
        let refill = users(&self.chains);
        for name in users(&old.chains) {
            let _ = writeln!(out, "flush chain inet {table} {name}");
        }
        for name in &respec {
            let _ = writeln!(out, "delete {} inet {table} {name}", kind_word(old.sets[*name].kind));
        }
        // New sets and chains first: everything else may refer to them.
        for (name, set) in self.sets.iter().filter(|(n, _)| !old.sets.contains_key(*n) || respec.contains(n)) {
            let empty = Set { elements: BTreeMap::new(), ..set.clone() };
            write_set(&mut out, table, name, &empty);
        }
        for (name, chain) in self.chains.iter().filter(|(n, _)| !old.chains.contains_key(*n)) {
            self.write_chain_decl(&mut out, table, name, chain);
        }
        // Elements that go away or change value, before the chains they name are deleted.
        for (name, set) in &self.sets {
            let Some(before) = old.sets.get(name).filter(|_| !respec.contains(name)) else { continue };
            let gone: Vec<&str> = before
                .elements
                .iter()
                .filter(|(k, v)| set.elements.get(*k) != Some(*v))
                .map(|(k, _)| k.as_str())
                .collect();
            if !gone.is_empty() {
                let _ = writeln!(out, "delete element inet {table} {name} {{ {} }}", gone.join(", "));
            }
        }
        for (name, chain) in &self.chains {
            match old.chains.get(name) {
                Some(_) if refill.contains(name) => write_rules(&mut out, table, name, chain),
                Some(before) if before.rules == chain.rules => {}
                Some(_) => {
                    let _ = writeln!(out, "flush chain inet {table} {name}");
                    write_rules(&mut out, table, name, chain);
                }
                None => write_rules(&mut out, table, name, chain),
            }
        }
        for (name, set) in &self.sets {
            let before = old.sets.get(name).filter(|_| !respec.contains(name));
            let added: Vec<&String> = set
                .elements
                .iter()
                .filter(|(k, v)| before.is_none_or(|b| b.elements.get(*k) != Some(*v)))
                .map(|(k, _)| k)
                .collect();
            if !added.is_empty() {
                let _ = writeln!(out, "add element inet {table} {name} {{ {} }}", element_list(set, &added));
            }
        }
        let removed: Vec<&String> = old.chains.keys().filter(|n| !self.chains.contains_key(*n)).collect();
        for name in &removed {
            let _ = writeln!(out, "flush chain inet {table} {name}");
        }
        for name in &removed {
            let _ = writeln!(out, "delete chain inet {table} {name}");
        }
        for (name, set) in old.sets.iter().filter(|(n, _)| !self.sets.contains_key(*n)) {
            let _ = writeln!(out, "delete {} inet {table} {name}", kind_word(set.kind));
        }
        Update::Script(out)
    }
}

/// What [`Ruleset::render_update`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Update {
    /// Nothing to do.
    Unchanged,
    /// Apply this transaction.
    Script(String),
    /// A hook changed: replace the whole table ([`Ruleset::render`]).
    Replace,
}

fn write_set(out: &mut String, table: &str, name: &str, set: &Set) {
    let _ = writeln!(out, "add {} inet {table} {name} {{ {} }}", kind_word(set.kind), set.spec);
    if !set.elements.is_empty() {
        let keys: Vec<&String> = set.elements.keys().collect();
        let _ = writeln!(out, "add element inet {table} {name} {{ {} }}", element_list(set, &keys));
    }
}

fn write_rules(out: &mut String, table: &str, name: &str, chain: &Chain) {
    for r in &chain.rules {
        let _ = writeln!(out, "add rule inet {table} {name} {r}");
    }
}

mod assembly;
pub use assembly::{Assembly, Changes};

#[cfg(test)]
mod tests;
